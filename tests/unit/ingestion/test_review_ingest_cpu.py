"""Review of ingest-cpu: failing tests, one per finding (see the commit body)."""

from app.web import client_address
from tools.factories import make_event


def test_a_clients_address_is_not_kept_once_hashed(ingestion_app):
    """docs/visitors.md: the address 'is read for the hash and dropped'. The LRU cache of
    hashed addresses keeps the last 4096 clients' raw addresses (full IPv6, not the /64)
    with ADDRESS_KEY in every ingestion process."""
    client_address.hashed_limited_address.cache_clear()
    ingestion_app.test_client().post("/event", json=make_event(), environ_base={"REMOTE_ADDR": "2001:db8::7"})
    assert client_address.hashed_limited_address.cache_info().currsize == 0
