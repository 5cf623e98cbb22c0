"""Which `Host` headers the viewer answers, and the address it prints.

A web page elsewhere can make its own name resolve to this machine (DNS rebinding) and
then read the viewer as if it were its own site: its requests carry that name as `Host`.
So the viewer answers only to the names it was asked to answer to, for every address it
listens on: the loopback names; the address given to `--host`; beyond loopback, the
machine's own name and each `--allow-host`; and an address typed as digits that is the
very address the connection reached (no name, so nothing to rebind). Anything else is
refused.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::"})  # every address of the machine
# A Host header: a name or IPv4 address, or an IPv6 address in brackets; then a port.
_HOST = re.compile(r"(?:\[([0-9a-f:.%]+)\]|([^\[\]:/@\s]+))(?::([0-9]{1,5}))?", re.ASCII)


def plain(host: str) -> str:
    """A host as given (`[::1]`, `LocalHost.`) in the form it is compared in (`::1`,
    `localhost`)."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.removesuffix(".")


def is_loopback(host: str) -> bool:
    host = plain(host)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url(host: str, port: int) -> str:
    """The address to open for a server listening on `host` (an IPv6 address in
    brackets; for every address, loopback's)."""
    host = plain(host)
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def own_names() -> set[str]:
    """The machine's own name (what `hostname` prints)."""
    try:
        return {plain(socket.gethostname())} - {""}
    except OSError:
        return set()


@dataclass(frozen=True)
class Hosts:
    """The names (and addresses) the viewer answers to, on its port."""

    names: frozenset[str]
    port: int

    @classmethod
    def listening_on(cls, host: str, port: int, allowed: Iterable[str] = ()) -> Hosts:
        """For a server on `host`:`port`; `allowed`: the names the user added."""
        names = {plain(host), *LOOPBACK_NAMES}
        if not is_loopback(host):
            names |= own_names() | {plain(name) for name in allowed}
        return cls(frozenset(names - WILDCARDS), port)

    def accepts(self, header: str, local_address: str | None) -> bool:
        """Whether to answer a request whose Host header is `header`, which reached
        this machine at `local_address` (the connection's own end)."""
        found = _HOST.fullmatch(header.strip().lower())
        if found is None:
            return False
        name = (found[1] or found[2]).removesuffix(".")
        port = int(found[3]) if found[3] else 80
        if port != self.port:
            return False
        return name in self.names or _same_address(name, local_address)


def _same_address(name: str, local_address: str | None) -> bool:
    if local_address is None:
        return False
    try:
        typed = ipaddress.ip_address(name)
        local = ipaddress.ip_address(local_address)
    except ValueError:
        return False  # a name: only the names above are answered
    if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped is not None:
        local = local.ipv4_mapped  # an IPv4 client of a dual-stack socket
    return typed == local and not typed.is_unspecified
