"""Whether this host holds the data center's virtual address now (keepalived adds it to an interface of the node that
is master). Read from the kernel's own tables under /proc: a rare question (a peer's copy of a dialog timing out),
asked from a Kamailio worker without any library."""

from __future__ import annotations

import ipaddress

FIB_TRIE = "/proc/net/fib_trie"
IF_INET6 = "/proc/net/if_inet6"


def held(address: str, fib_trie: str = FIB_TRIE, if_inet6: str = IF_INET6) -> bool:
    """True when `address` is one of this host's own addresses ('' or unreadable tables: False)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    try:
        if ip.version == 6:
            with open(if_inet6) as fh:
                return any(line.split()[:1] == [ip.exploded.replace(":", "")] for line in fh)
        with open(fib_trie) as fh:
            return _local_in_trie(fh.read(), str(ip))
    except OSError:
        return False


def _local_in_trie(text: str, ip: str) -> bool:
    """The kernel's routing trie lists each local address as a leaf ("|-- <ip>") followed by "/32 host LOCAL"."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f"|-- {ip}":
            for follow in lines[i + 1 : i + 4]:
                if "|--" in follow:
                    break
                if "host LOCAL" in follow:
                    return True
    return False
