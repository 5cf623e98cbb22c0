"""Run the viewer: werkzeug's WSGI server, a thread per connection, until Ctrl+C.

Bounded, whatever its clients do: at most `Limits.connections` requests are served at
once (one more is answered 503 at once and closed, never queued in a thread), and each
read or write of a socket waits at most `Limits.timeout` seconds, so a client that
sends half a request and waits is dropped. A browser opens at most six connections to
one address: the bound is never reached by people looking at pages.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import webbrowser
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler

from ..errors import ShelfError
from .app import create_app
from .decide import Desk
from .hosts import Hosts, is_loopback, plain, url
from .stores import MAX_OPEN, WORKSPACE, Versions
from .thumbs import Thumbnails

LOOPBACK = "127.0.0.1"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: 50\r\n\r\n"
    b"imageshelf view: too many connections; try again.\n"
)


@dataclass(frozen=True)
class Limits:
    """What the viewer holds at most, whatever its clients send."""

    connections: int = 32  # requests served at once (a thread each)
    timeout: float = 30.0  # seconds a socket may stay silent (a read, or a write of 1 MiB)
    versions: int = MAX_OPEN  # versions kept open (each may be a fetched store on disk)


class _Handler(WSGIRequestHandler):
    def setup(self) -> None:
        super().setup()
        assert isinstance(self.server, _Server)
        self.connection.settimeout(self.server.limits.timeout)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one line per thumbnail would bury what the command says

    def log_error(self, format: str, *args: object) -> None:
        pass  # a request timed out or malformed: the client's, answered or dropped


class _Server(BaseWSGIServer):
    """werkzeug's threaded server with its threads bounded by a count of free slots."""

    multithread = True

    def __init__(self, host: str, listening: socket.socket, limits: Limits) -> None:
        self.limits = limits
        self._slots = threading.BoundedSemaphore(max(1, limits.connections))
        port = listening.getsockname()[1]
        super().__init__(host, port, _placeholder, handler=_Handler, fd=listening.fileno())

    def process_request(self, request: Any, client_address: Any) -> None:  # a TCP socket
        if self._slots.acquire(blocking=False):
            try:
                threading.Thread(
                    target=self._serve_one, args=(request, client_address), daemon=True
                ).start()
                return
            except RuntimeError:  # no thread could be started: refused like one too many
                self._slots.release()
        _refuse(request)
        self.shutdown_request(request)

    def _serve_one(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()


def _refuse(request: socket.socket) -> None:
    try:
        request.setblocking(False)  # a few bytes into an empty buffer: never waits
        request.send(_BUSY)
    except OSError:
        pass


def start(
    store_path: Path,
    rev: str | None,
    diff: tuple[str, str] | None,
    host: str,
    port: int,
    cache: Path,
    say: Callable[[str], None],
    allowed: Iterable[str] = (),
    limits: Limits = Limits(),
    catalog: Path | None = None,
    desk: Desk | None = None,
) -> tuple[BaseWSGIServer, Versions, str]:
    """Open the version(s) to show (a one-line ShelfError if one cannot be read), then
    bind the server: (server, versions, the address to open). `allowed`: the names,
    beyond the machine's own, it answers to when listening beyond loopback. `catalog`:
    the workspace's (None: where dvc.yaml puts it). `desk`: where decisions are written
    (None: no forms, as --read-only)."""
    host = plain(host)
    versions = Versions(store_path, catalog, max_open=limits.versions)
    try:
        default = rev or WORKSPACE
        for name in diff or (default,):
            say(f"imageshelf view: opening the store at {name}")
            versions.store(name)
        if diff:
            versions.diff(*diff)
        server = _bind(host, port, limits)
    except BaseException:
        versions.close()
        raise
    bound = server.socket.getsockname()[1]
    hosts = Hosts.listening_on(host, bound, allowed)
    server.app = create_app(versions, Thumbnails(cache), default, diff, hosts, desk)
    address = url(host, bound) + ("diff" if diff else "")
    return server, versions, address


def _bind(host: str, port: int, limits: Limits) -> BaseWSGIServer:
    # Bound here, not by werkzeug, which prints its own advice and exits on a port in use.
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        both = host == "::" and socket.has_dualstack_ipv6()  # every address, IPv4's too
        listening = socket.create_server((host, port), family=family, dualstack_ipv6=both)
    except OSError as exc:
        where = url(host, port).removeprefix("http://").rstrip("/") if port else host
        advice = "; choose another --port, or leave it out for a free one" if port else ""
        raise ShelfError(f"cannot listen on {where}: {exc.strerror or exc}{advice}") from None
    with listening:  # the server listens on a duplicate of its descriptor
        return _Server(host, listening, limits)


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


__all__ = ["LOOPBACK", "Desk", "Limits", "is_loopback", "serve", "start", "stop_on_sigterm"]
