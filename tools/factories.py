"""Test data: event payloads as clients send them."""

from __future__ import annotations

import uuid
from typing import Any

from app.ingestion.schemas import to_message

# Test and benchmark events carry fixed dates such as 2025-11-15, older than the default
# window of accepted timestamps; the processes they are posted to accept ten years back.
FIXED_DATES_MAX_AGE_DAYS = 3650
FIXED_DATES_ENV = {"EVENT_MAX_AGE_DAYS": str(FIXED_DATES_MAX_AGE_DAYS)}


# What a person's browser says it is: test pages send it, since ingestion drops the events of
# the user agents that say they are a script or a headless browser (app/ingestion/bots.py).
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


def new_site_id() -> str:
    """A site id no other test uses, so tests never see each other's events."""
    return f"site-{uuid.uuid4().hex[:12]}"


def make_event(**overrides: Any) -> dict[str, Any]:
    """A valid `POST /event` body; pass a field as None to leave it out."""
    event: dict[str, Any] = {
        "site_id": "site-abc-123",
        "event_type": "page_view",
        "path": "/pricing",
        "user_id": "user-xyz-789",
        "timestamp": "2025-11-15T10:00:00Z",
    }
    event.update(overrides)
    return {key: value for key, value in event.items() if value is not None}


def make_message(**overrides: Any) -> dict[str, Any]:
    """An event as the queue carries it (see `app.ingestion.schemas.to_message`)."""
    return to_message(make_event(**overrides))


def seed_example_events(site_id: str) -> list[dict[str, Any]]:
    """The four events of the original README's 'Send Multiple Events' example."""
    rows = [
        ("/pricing", "user-1", "10:00"),
        ("/blog/post-1", "user-2", "10:05"),
        ("/", "user-3", "10:10"),
        ("/pricing", "user-1", "10:15"),
    ]
    return [
        make_event(site_id=site_id, path=path, user_id=user, timestamp=f"2025-11-15T{clock}:00Z")
        for path, user, clock in rows
    ]


SEED_EXAMPLE_STATS = {
    "date": "2025-11-15",
    "total_views": 4,
    "unique_users": 3,
    "top_paths": [
        {"path": "/pricing", "views": 2},
        {"path": "/", "views": 1},
        {"path": "/blog/post-1", "views": 1},
    ],
}
