"""IP address -> country (ISO 3166-1 alpha-2), offline, plus random IPs of a country.

Data: the `iptocc` PyPI package (MIT OR Apache-2.0), whose wheel embeds the five Regional
Internet Registries' delegated statistics (refreshed nightly upstream; the version pinned in
pyproject fixes the data). The country is the one the RIR *assigned* the block to, which agrees
with commercial geo-IP databases for roughly 95 % of IPv4 addresses. IPv4 and IPv6. No file I/O
and no network at run time; a lookup is a two-level bucketed binary search in Rust (~150 ns per
call from Python). We use it rather than a bisect over our own sorted int array because it is the
same algorithm, faster, and its data is licensed and maintained; `ip-to-country` (stale pickles,
empty licence file) and `ip2location` (LITE database must be downloaded separately) were rejected.

For producers: :func:`random_ip` draws a realistic public IPv4 address that :func:`ip_country`
maps to a given country, so generated traffic and the `web_traffic` job's country column agree.
:func:`countries` lists the countries it can draw from. Both use a table of /20 blocks built once,
lazily (~0.5 s), on first use.
"""

from __future__ import annotations

import random
import socket
import struct
from array import array
from collections.abc import Callable
from functools import cache

#: Returned for private, reserved, unassigned and unparseable addresses (ISO "user-assigned").
UNKNOWN = "ZZ"

_BLOCK_BITS = 12  # /20 blocks: 4096 addresses each, 2**20 blocks cover IPv4
_BLOCKS = 1 << (32 - _BLOCK_BITS)


@cache
def _country_code() -> Callable[[str], str | None]:
    """The iptocc lookup, imported on first use (keeps module import free of side effects)."""
    from iptocc import country_code

    return country_code  # type: ignore[return-value]


def ip_country(ip: str | None) -> str | None:
    """ISO 3166-1 alpha-2 code of the country the address is registered to.

    ``'ZZ'`` for private/reserved/unassigned addresses and for strings that are not an IPv4 or
    IPv6 address; NULL in, NULL out. Surrounding whitespace is ignored. A few blocks are
    registered to the RIR pseudo-codes ``EU``/``AP``; they are returned as they are.
    """
    if ip is None:
        return None
    return _country_code()(ip.strip()) or UNKNOWN


def _int_to_ipv4(value: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", value))


@cache
def _blocks_by_country() -> dict[str, array]:
    """Country -> array of /20 block indices whose middle address is registered to it."""
    probes = [_int_to_ipv4((b << _BLOCK_BITS) | 0x801) for b in range(_BLOCKS)]
    codes: list[str | None] = _country_code()(probes)  # type: ignore[arg-type,assignment]
    table: dict[str, array] = {}
    for block, code in enumerate(codes):
        if code is not None:
            table.setdefault(code, array("I")).append(block)
    return table


def countries() -> list[str]:
    """Sorted country codes that :func:`random_ip` can draw addresses for (about 230)."""
    return sorted(_blocks_by_country())


def random_ip(country: str, rng: random.Random) -> str:
    """A random public IPv4 address that ``ip_country`` maps to ``country`` (e.g. ``'US'``).

    Deterministic for a seeded ``rng``. Blocks are drawn uniformly, so a country's share of
    draws follows its share of address space only within that country. The host part avoids
    ``.0`` and ``.255``. Raises ``KeyError`` for a country with no registered IPv4 blocks.
    """
    blocks = _blocks_by_country().get(country.upper())
    if not blocks:
        raise KeyError(f"no IPv4 address space registered to country {country!r}")
    lookup = _country_code()
    block = blocks[rng.randrange(len(blocks))]
    for _ in range(16):  # a block can be split between countries: verify, retry
        value = (block << _BLOCK_BITS) | rng.randrange(1 << _BLOCK_BITS)
        if value & 0xFF in (0, 255):
            continue
        ip = _int_to_ipv4(value)
        if lookup(ip) == country.upper():
            return ip
    return _int_to_ipv4((block << _BLOCK_BITS) | 0x801)  # the probe address: known to match
