"""`flask seed-demo` against the running pipeline: what ingestion accepts, /stats counts."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime, timedelta

import requests

from tests.integration.client import TIMEOUT
from tools.factories import new_site_id
from tools.processes import PYTHON_BIN, wait_until


def test_the_demo_traffic_is_accepted_and_counted(pipeline, service_env):
    site_id = new_site_id()
    done = subprocess.run(
        [
            *(str(PYTHON_BIN / "flask"), "--app", "wsgi:ingestion", "seed-demo", site_id),
            *("--days", "2", "--visits-per-day", "20", "--url", pipeline["ingestion"]),
        ],
        env={**os.environ, **service_env, "AUTH_MODE": "open"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    accepted = int(re.search(r"(\d+) events accepted, 0 refused", done.stdout)[1])  # type: ignore[index]
    today = datetime.now(UTC).date()
    params = {"site_id": site_id, "start": str(today - timedelta(days=1)), "end": str(today)}

    def counted() -> int:
        response = requests.get(f"{pipeline['reporting']}/stats", params=params, timeout=TIMEOUT)
        return int(response.json()["total_views"])

    wait_until(lambda: counted() == accepted, 60, f"{accepted} demo events counted", interval=0.2)
    breakdown = requests.get(
        f"{pipeline['reporting']}/stats/breakdown", params={**params, "by": "event_type"}, timeout=TIMEOUT
    ).json()
    event_types = {row["value"] for row in breakdown["results"]}
    assert "page_view" in event_types
    assert event_types & {"signup", "download", "outbound_click"}
