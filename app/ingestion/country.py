"""The visitor's country, looked up in ingestion because the address never leaves it: the
ISO 3166-1 alpha-2 code of the Regional Internet Registry's allocation holding the address,
from iptocc's embedded table (the RIRs' published statistics; MIT OR Apache-2.0), with no
file or network access."""

from __future__ import annotations

from functools import lru_cache

import iptocc

# Recent addresses remembered per process: a lookup is already well under a microsecond,
# so the cache only spares a page's burst of events the work again.
CACHE_SIZE = 1024


@lru_cache(maxsize=CACHE_SIZE)
def country_of(address: str) -> str | None:
    """The country code of an IPv4 or IPv6 address; None for a private, reserved or
    unallocated address, or for what is no address."""
    return iptocc.country_code(address)
