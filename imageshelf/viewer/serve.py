"""Run the viewer: a threaded WSGI server (werkzeug's) on loopback, until Ctrl+C."""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ..errors import ShelfError
from .app import create_app
from .sources import WORKSPACE, Versions
from .thumbs import Thumbnails

LOOPBACK = "127.0.0.1"


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one line per thumbnail would bury what the command says


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start(
    store_path: Path,
    rev: str | None,
    diff: tuple[str, str] | None,
    host: str,
    port: int,
    cache: Path,
    say: Callable[[str], None],
) -> tuple[BaseWSGIServer, Versions, str]:
    """Open the version(s) to show (a one-line ShelfError if one cannot be read), then
    bind the server: (server, versions, the address to open)."""
    versions = Versions(store_path)
    try:
        default = rev or WORKSPACE
        for name in diff or (default,):
            say(f"imageshelf view: opening the store at {name}")
            versions.store(name)
        if diff:
            versions.diff(*diff)
        server = _bind(host, port)
    except BaseException:
        versions.close()
        raise
    bound = server.socket.getsockname()[1]
    hosts = (
        None
        if not is_loopback(host)
        else {f"{name}:{bound}" for name in (host, "localhost", LOOPBACK)}
    )
    server.app = create_app(versions, Thumbnails(cache), default, diff, hosts)
    shown = LOOPBACK if host in ("0.0.0.0", "::") else host
    address = f"http://{shown}:{bound}/" + ("diff" if diff else "")
    return server, versions, address


def _bind(host: str, port: int) -> BaseWSGIServer:
    # Bound here, not by werkzeug, which prints its own advice and exits on a port in use.
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.create_server((host, port), family=family)
    except OSError as exc:
        where = f"{host}:{port}" if port else host
        advice = "; choose another --port, or leave it out for a free one" if port else ""
        raise ShelfError(f"cannot listen on {where}: {exc.strerror or exc}{advice}") from None
    bound = listening.getsockname()[1]
    server = make_server(
        host, bound, _placeholder, threaded=True, request_handler=_Quiet, fd=listening.fileno()
    )
    listening.detach()  # the server's socket now owns the descriptor
    return server


def _placeholder(environ: object, start_response: object) -> list[bytes]:
    raise RuntimeError("the app is set before the server starts")


def serve(server: BaseWSGIServer, versions: Versions, address: str, open_browser: bool) -> None:
    """Serve until interrupted (Ctrl+C, or SIGTERM from `kill` or a service manager);
    then close every version (fetched ones are deleted)."""
    try:  # from the first line the user sees, an interrupt ends in the finally below
        print(f"imageshelf view: serving at {address}  (Ctrl+C to stop)", flush=True)
        if open_browser:
            webbrowser.open(address)
        server.serve_forever()  # werkzeug's: returns on Ctrl+C
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        versions.close()
    print("imageshelf view: stopped", file=sys.stderr)


def stop_on_sigterm() -> None:
    """From here on, SIGTERM (`kill`, a service manager) stops this process as Ctrl+C
    does, so that what the viewer fetched is deleted. Called before anything is opened."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
