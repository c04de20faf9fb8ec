"""The export-import round trip on fresh local servers (Redis and FerretDB, or MONGO_URI), every
process as `make run` starts it (a worker, ingestion and reporting under gunicorn):

    .venv/bin/python -m bench.transfer [--events 10000] [--page 1000]

Posts EVENTS events of one site over three days through `POST /events` and waits until
they are counted; exports them by `GET /events/export` in pages of PAGE; imports the export
into a new site by `POST /events/import` and into another by `flask events import`, each
timed until `/stats` counts every event; and says whether every site answers the same.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from tools.factories import FIXED_DATES_ENV, make_event, new_site_id
from tools.local_services import mongo_argv, redis_argv
from tools.processes import (
    PYTHON_BIN,
    UNLIMITED_RATES,
    http_ok,
    start_local_server,
    start_services,
    start_worker,
    stop_all,
    wait_until,
)
from tools.transfer import export_site, import_ndjson

DAYS = ("2025-11-14", "2025-11-15", "2025-11-16")
POST_BATCH = 500
QUESTIONS: list[tuple[str, dict[str, Any]]] = [
    ("/stats", {}),
    ("/stats/aggregated", {}),
    ("/stats/timeseries", {}),
    ("/stats/breakdown", {"by": "path", "limit": 100}),
]


def events_of(site_id: str, count: int) -> list[dict[str, Any]]:
    rng = random.Random(29)
    return [
        make_event(
            site_id=site_id,
            event_type=rng.choice(["page_view", "page_view", "signup"]),
            path=f"/p{rng.randrange(50)}",
            user_id=f"u{rng.randrange(2000)}",
            timestamp=f"{rng.choice(DAYS)}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
            url="https://shop.example/page",
            referrer=rng.choice([None, "https://search.example/"]),
        )
        for _ in range(count)
    ]


def counted(reporting: str, site_id: str) -> int:
    params = {"site_id": site_id, "start": DAYS[0], "end": DAYS[-1]}
    return int(requests.get(f"{reporting}/stats", params=params, timeout=30).json()["total_views"])


def answers(reporting: str, site_id: str) -> list[Any]:
    found = []
    for endpoint, extra in QUESTIONS:
        params = {"site_id": site_id, "start": DAYS[0], "end": DAYS[-1], **extra}
        body = requests.get(f"{reporting}{endpoint}", params=params, timeout=60).json()
        found.append({key: value for key, value in body.items() if key != "site_id"})
    return found


def run(count: int, page: int, mongo_uri: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as root:
        run_dir = Path(root)
        redis_server = start_local_server("redis", redis_argv, run_dir)
        mongo_server = None if mongo_uri else start_local_server("mongo", mongo_argv, run_dir)
        uri = mongo_uri or f"mongodb://127.0.0.1:{mongo_server.port}/bench_transfer"  # type: ignore[union-attr]
        env = {
            **os.environ,
            **UNLIMITED_RATES,
            **FIXED_DATES_ENV,
            "AUTH_MODE": "open",
            "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0",
            "MONGO_URI": uri,
        }
        worker = start_worker("worker", env, run_dir)
        services = start_services({"ingestion": "ingestion", "reporting": "reporting"}, env, run_dir)
        processes = [worker, *(process for process, _ in services.values())]
        try:
            (_, ingestion), (_, reporting) = services["ingestion"], services["reporting"]
            for url in (ingestion, reporting):
                wait_until(functools.partial(http_ok, f"{url}/health"), 30, f"{url} healthy")
            measure(ingestion, reporting, env, run_dir, count, page)
        finally:
            stop_all(processes)
            redis_server.stop()
            if mongo_server is not None:
                mongo_server.stop()


def measure(
    ingestion: str, reporting: str, env: dict[str, str], run_dir: Path, count: int, page: int
) -> None:
    source, by_http, by_command = new_site_id(), new_site_id(), new_site_id()
    events = events_of(source, count)
    for start in range(0, count, POST_BATCH):
        requests.post(
            f"{ingestion}/events", json=events[start : start + POST_BATCH], timeout=60
        ).raise_for_status()
    wait_until(lambda: counted(reporting, source) == count, 600, "the posted events counted", interval=0.2)

    started = time.perf_counter()
    params = {"site_id": source, "start": DAYS[0], "end": DAYS[-1], "limit": page}
    exported, pages = export_site(reporting, params)
    export_seconds = time.perf_counter() - started
    lines = exported.count(b"\n")

    started = time.perf_counter()
    response = import_ndjson(ingestion, exported, by_http)
    response.raise_for_status()
    http_queued = time.perf_counter() - started
    wait_until(lambda: counted(reporting, by_http) == count, 600, "the HTTP import counted", interval=0.2)
    http_counted = time.perf_counter() - started

    path = run_dir / "export.ndjson"
    path.write_bytes(exported)
    started = time.perf_counter()
    subprocess.run(
        [
            str(PYTHON_BIN / "flask"),
            "--app",
            "wsgi:ingestion",
            "events",
            "import",
            str(path),
            "--site",
            by_command,
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    command_queued = time.perf_counter() - started
    wait_until(
        lambda: counted(reporting, by_command) == count, 600, "the command's import counted", interval=0.2
    )
    command_counted = time.perf_counter() - started

    same = answers(reporting, source) == answers(reporting, by_http) == answers(reporting, by_command)
    print(f"{count} events, {len(exported)} bytes of NDJSON; every site answers the same: {same}")
    print("| step | events | seconds | events/s |")
    print("|---|---|---|---|")
    rows = [
        (f"export, {pages} pages of {page}", lines, export_seconds),
        ("POST /events/import, until answered (queued)", count, http_queued),
        ("POST /events/import, until /stats counts all", count, http_counted),
        ("flask events import, until it exits (queued)", count, command_queued),
        ("flask events import, until /stats counts all", count, command_counted),
    ]
    for name, events_done, seconds in rows:
        print(f"| {name} | {events_done} | {seconds:.2f} | {events_done / seconds:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--page", type=int, default=1000, help="Events per export page (at most 10000).")
    args = parser.parse_args()
    run(args.events, args.page, os.environ.get("MONGO_URI"))


if __name__ == "__main__":
    main()
