"""A host of the test's own on the network: a Linux network namespace joined to this one by two
virtual Ethernet links, each with an address of its own, so that a test can make one path to a
server vanish the way a power cut or a network split does (no reset, no FIN: packets go
unanswered) while the other still answers. Needs root, or sudo without a password (`ip netns`)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass


def _ip(*args: str) -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    done = subprocess.run([*sudo, "ip", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"ip {' '.join(args)} failed (root or sudo needed): {done.stderr.strip()}"


@dataclass(frozen=True)
class Link:
    """One path to the host: the namespace's end is `inside` and answers on `address`."""

    outside: str
    inside: str
    address: str

    @property
    def peer(self) -> str:
        """The address of this side's end of the link."""
        return self.address.rsplit(".", 1)[0] + ".1"


@dataclass(frozen=True)
class Host:
    namespace: str
    links: tuple[Link, ...]

    def run(self, command: list[str]) -> list[str]:
        """`command` run inside the host's namespace (a server started so listens there)."""
        return ["ip", "netns", "exec", self.namespace, *command]

    def cut(self, link: Link) -> None:
        """The path through `link` goes dark: the host drops every packet it would send back that
        way (a blackhole route), so what arrives there is never answered, not even with a reset
        or an ICMP error, and the link itself stays up, as with a host that lost power behind a
        switch or a router."""
        _ip("-n", self.namespace, "route", "add", "blackhole", f"{link.peer}/32")


def _free_block(links: int) -> int:
    """The first N such that none of 10.231.N.0/24 .. 10.231.(N+links-1).0/24 is in use here."""
    shown = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    used = {int(third) for third in re.findall(r"inet 10\.231\.(\d+)\.", shown)}
    for base in range(0, 256 - links, links):
        if not used & set(range(base, base + links)):
            return base
    raise AssertionError("no free 10.231.N.0/24 block for the test's host")


@contextlib.contextmanager
def host(links: int = 2) -> Iterator[Host]:
    """A namespace reachable from here over `links` links, on 10.231.N.0/30 subnets not in use yet
    on this machine; removed afterwards (a namespace of the same name left by a killed run first)."""
    tag = f"qtq{os.getpid() % 100000}"
    base = _free_block(links)
    made = Host(tag, tuple(Link(f"{tag}o{i}", f"{tag}i{i}", f"10.231.{base + i}.2") for i in range(links)))
    with contextlib.suppress(AssertionError):
        _ip("netns", "del", made.namespace)
    _ip("netns", "add", made.namespace)
    try:
        _ip("-n", made.namespace, "link", "set", "lo", "up")
        for link in made.links:
            _ip("link", "add", link.outside, "type", "veth", "peer", "name", link.inside, "netns", made.namespace)
            _ip("addr", "add", f"{link.peer}/30", "dev", link.outside)
            _ip("link", "set", link.outside, "up")
            _ip("-n", made.namespace, "addr", "add", f"{link.address}/30", "dev", link.inside)
            _ip("-n", made.namespace, "link", "set", link.inside, "up")
        yield made
    finally:
        for link in made.links:
            with contextlib.suppress(AssertionError):  # not made, or gone with the namespace
                _ip("link", "del", link.outside)
        _ip("netns", "del", made.namespace)
