"""Ingestion looks the visitor's country up from their address, the one place that has it:
the queued message carries the country code, never the address."""

import pytest

from app.ingestion import views
from tests.unit.ingestion.test_visitor_ids import VISITOR, post
from tools.factories import make_event

GERMAN_ADDRESS = "81.169.145.0"  # Strato, Berlin: allocated to DE
JAPANESE_ADDRESS = "1.0.16.1"


@pytest.fixture
def queued(monkeypatch):
    messages = []
    monkeypatch.setattr(views.committer, "submit", lambda batch, **_: messages.extend(batch))
    return messages


def test_the_queued_event_carries_the_country_of_the_clients_address(ingestion, queued):
    post(ingestion, make_event(), address=GERMAN_ADDRESS)
    (message,) = queued
    assert message["country"] == "DE"
    assert GERMAN_ADDRESS not in str(message)


def test_a_server_naming_the_visitors_address_gives_the_visitors_country(ingestion, queued):
    post(ingestion, make_event(user_id=None, **(VISITOR | {"ip": JAPANESE_ADDRESS})), address=GERMAN_ADDRESS)
    (message,) = queued
    assert message["country"] == "JP"


def test_a_private_address_gives_no_country(ingestion, queued):
    post(ingestion, make_event(), address="10.0.0.7")
    (message,) = queued
    assert "country" not in message
