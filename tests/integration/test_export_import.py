"""Export a site and import it into a new one, through the real pipeline: every reporting
endpoint answers the same for both."""

from __future__ import annotations

import os
import random
import subprocess
import time
from typing import Any

import requests

from tests.integration.client import TIMEOUT
from tools.factories import make_event, new_site_id
from tools.processes import PYTHON_BIN, wait_until
from tools.transfer import export_site, import_ndjson

DAYS = ("2025-11-14", "2025-11-15", "2025-11-16")
EVENTS = 600
PAGE = 250  # events per export page: the export takes several, resumed by cursor
QUESTIONS: list[tuple[str, dict[str, Any]]] = [
    ("/stats", {}),
    ("/stats", {"tz": "America/New_York"}),
    ("/stats/aggregated", {}),
    ("/stats/timeseries", {}),
    ("/stats/timeseries", {"interval": "hour"}),
    ("/stats/breakdown", {"by": "path", "limit": 100}),
    ("/stats/breakdown", {"by": "event_type"}),
    ("/stats", {"event_type": "signup"}),
]


def site_events(site_id: str) -> list[dict[str, Any]]:
    rng = random.Random(29)
    return [
        make_event(
            site_id=site_id,
            event_type=rng.choice(["page_view", "page_view", "signup", "click"]),
            path=rng.choice([None, "/", "/pricing", *(f"/blog/{n}" for n in range(20))]),
            user_id=rng.choice([None, *(f"u{n}" for n in range(40))]),
            timestamp=f"{rng.choice(DAYS)}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
            url="https://shop.example/page?utm_source=news",
            referrer=rng.choice([None, "https://search.example/"]),
            props=rng.choice([None, {"plan": "pro", "seats": rng.randrange(5)}]),
        )
        for _ in range(EVENTS)
    ]


def settled(reporting: str, site_id: str) -> bool:
    """Every event accepted for the site is stored (or found stored) and in the rollups."""
    for day in DAYS:
        health = requests.get(
            f"{reporting}/health/pipeline", params={"site_id": site_id, "date": day}, timeout=TIMEOUT
        ).json()
        if health["events"]["unaccounted"] or health["rollups"]["backlog"]:
            return False
    return True


def answers(reporting: str, site_id: str) -> list[dict[str, Any]]:
    found = []
    for endpoint, extra in QUESTIONS:
        params = {"site_id": site_id, "start": DAYS[0], "end": DAYS[-1], **extra}
        response = requests.get(f"{reporting}{endpoint}", params=params, timeout=TIMEOUT)
        response.raise_for_status()
        found.append({key: value for key, value in response.json().items() if key != "site_id"})
    return found


def test_a_site_exported_and_imported_into_a_new_one_answers_the_same(
    pipeline, service_env, tmp_path, figures
):
    source, copy = new_site_id(), new_site_id()
    events = site_events(source)
    for start in range(0, EVENTS, 200):
        batch = requests.post(
            f"{pipeline['ingestion']}/events", json=events[start : start + 200], timeout=TIMEOUT
        )
        assert batch.json()["accepted"] == len(events[start : start + 200])
    wait_until(lambda: settled(pipeline["reporting"], source), 60, f"{source} settled", interval=0.2)

    started = time.monotonic()
    params = {"site_id": source, "start": DAYS[0], "end": DAYS[-1], "limit": PAGE}
    exported, pages = export_site(pipeline["reporting"], params)
    export_seconds = time.monotonic() - started
    assert exported.count(b"\n") == EVENTS
    assert pages == -(-EVENTS // PAGE)

    started = time.monotonic()
    imported = import_ndjson(pipeline["ingestion"], exported, copy)
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"status": "accepted", "sent": EVENTS, "refused": 0, "errors": {}}
    wait_until(lambda: settled(pipeline["reporting"], copy), 60, f"{copy} settled", interval=0.2)
    import_seconds = time.monotonic() - started

    assert answers(pipeline["reporting"], copy) == answers(pipeline["reporting"], source)
    figures.append(
        f"export/import round trip of {EVENTS} events: export {export_seconds:.2f} s ({pages} pages), "
        f"import until counted {import_seconds:.2f} s"
    )

    # The same file again, by the command: each event counts once.
    path = tmp_path / "export.ndjson"
    path.write_bytes(exported)
    done = subprocess.run(
        [str(PYTHON_BIN / "flask"), "--app", "wsgi:ingestion", "events", "import", str(path), "--site", copy],
        env={**os.environ, **service_env, "AUTH_MODE": "open"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert f"Sent {EVENTS} events" in done.stdout
    wait_until(lambda: settled(pipeline["reporting"], copy), 60, f"{copy} settled again", interval=0.2)
    assert answers(pipeline["reporting"], copy) == answers(pipeline["reporting"], source)
    assert answers(pipeline["reporting"], copy)[0]["total_views"] > 0
