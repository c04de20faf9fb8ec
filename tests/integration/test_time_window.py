"""The timestamp window of a real ingestion service left at its default settings.

The session's services run with a wide window (so fixed 2025 test dates keep working);
this module starts an ingestion service of its own with the defaults set explicitly.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from app.settings import Settings
from tests.integration.client import TIMEOUT, post_event
from tests.integration.services import serve
from tools.factories import make_event, new_site_id

DEFAULTS = Settings()
MAX_AGE = timedelta(days=DEFAULTS.event_max_age_days)
MAX_AHEAD = timedelta(seconds=DEFAULTS.event_max_ahead_seconds)
# Far enough inside or outside an edge that the test's and the server's clocks, and the
# time a request takes, cannot move an event across it.
MARGIN = timedelta(minutes=1)


@pytest.fixture(scope="module")
def default_window_url(service_env: dict[str, str], run_dir: Path) -> Iterator[str]:
    env = service_env | {
        "EVENT_MAX_AGE_DAYS": str(DEFAULTS.event_max_age_days),
        "EVENT_MAX_AHEAD_SECONDS": str(DEFAULTS.event_max_ahead_seconds),
    }
    yield from serve("ingestion", env, run_dir, name="ingestion-default-window")


def at(moment: datetime) -> dict:
    return make_event(site_id=new_site_id(), timestamp=moment.isoformat())


@pytest.mark.parametrize(
    "offset",
    [-MAX_AGE + MARGIN, timedelta(0), MAX_AHEAD - MARGIN],
    ids=["almost 30 days ago", "now", "almost 5 minutes ahead"],
)
def test_an_event_inside_the_default_window_is_accepted(default_window_url, offset):
    response = post_event(default_window_url, at(datetime.now(UTC) + offset))
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted"}


@pytest.mark.parametrize(
    "offset",
    [-MAX_AGE - MARGIN, MAX_AHEAD + MARGIN, timedelta(days=365 * 100)],
    ids=["just over 30 days ago", "just over 5 minutes ahead", "a century ahead"],
)
def test_an_event_outside_the_default_window_is_a_400_naming_the_window(default_window_url, offset):
    response = post_event(default_window_url, at(datetime.now(UTC) + offset))
    assert response.status_code == 400
    body = response.json()
    assert (body["status"], body["message"]) == ("error", "Invalid fields: timestamp")
    assert list(body["errors"]) == ["timestamp"]
    [message] = body["errors"]["timestamp"]
    assert message.startswith("Must be between ")
    assert message.endswith("at most 30 days before the server's time and 300 seconds after it.")


def test_a_batch_with_one_event_outside_the_window_accepts_the_others(default_window_url):
    now = datetime.now(UTC)
    events = [at(now), at(now - MAX_AGE - MARGIN), at(now - timedelta(days=1))]
    response = requests.post(f"{default_window_url}/events", json=events, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"], list(body["errors"])) == (2, 1, ["1"])
    assert list(body["errors"]["1"]) == ["timestamp"]


def test_the_seed_example_date_needs_a_wider_window(default_window_url):
    response = post_event(default_window_url, make_event(site_id=new_site_id()))
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["timestamp"]
