"""FerretDB's reads of many documents: a busy site-day among other sites' events.

    .venv/bin/python -m bench.ferretdb_reads [--events 100000] [--others 200000]
        [--store DIR] [--ferretdb .local/bin/ferretdb] [--requests 5]

It stores EVENTS events of one site on one day and OTHERS of 300 other sites over the days
around it, in random order, with `app.store.events.insert_events` (messages with the page
fields and what the worker derives), into DIR (kept; a DIR that already holds events is read
as it is, so that two builds can be compared on one store). Then it reads the site-day by
its `_id` range with each projection the application uses and two batch sizes, printing
FerretDB's CPU (its /proc/PID/stat user and system time, which other work on the machine
does not inflate) per 1,000 events, and times `/stats/aggregated` of the site-day through a
gunicorn reporting process. It prints; it never asserts figures.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from pymongo import MongoClient
from pymongo.database import Database

from app.enrichment import enrich
from app.store import events as event_store
from bench.ingest import bench_redis, gunicorn
from tools.factories import BROWSER_USER_AGENT, make_message
from tools.processes import ManagedProcess, free_port, port_open, wait_until

BUSY_SITE = "big.example"
DAY = datetime(2025, 11, 15, tzinfo=UTC)
OTHER_SITES = 300
INSERT_BATCH = 1000
SEED = 20261207
TICK = os.sysconf("SC_CLK_TCK")
PROJECTIONS: dict[str, dict[str, Any] | None] = {
    "_id only": {"_id": 1},
    "user, visitor, path (count_by_user_and_path)": {"_id": 0, "user_id": 1, "visitor_id": 1, "path": 1},
    "raw fields, sorted (iter_site_events)": {"_id": 0, **dict.fromkeys(event_store.RAW_FIELDS, 1)},
    "whole documents": None,
}


def message(site: str, at: datetime, rng: random.Random) -> dict[str, Any]:
    """An event as the worker stores it: the page's fields, then what enrichment derives."""
    page = f"/page/{rng.randrange(500)}"
    sent = make_message(
        site_id=site,
        path=None,
        user_id=f"user-{rng.randrange(20_000)}",
        timestamp=at.isoformat(),
        url=f"https://{site}{page}?utm_source=news&utm_campaign=c{rng.randrange(9)}",
        referrer="https://www.google.com/search?q=x",
        title=f"Page {page}",
        screen="1920x1080",
        language="en-US",
        props={"plan": "pro", "n": rng.randrange(5)},
        visitor_id=uuid.UUID(int=rng.getrandbits(128)).hex,
        country="DE",
        user_agent=BROWSER_USER_AGENT,
    )
    return {**enrich(sent), "visit_id": uuid.UUID(int=rng.getrandbits(128)).hex}


def load(db: Database[Any], events: int, others: int) -> None:
    rng = random.Random(SEED)
    kinds = [True] * events + [False] * others
    rng.shuffle(kinds)
    event_store.ensure_indexes(db)
    started = time.monotonic()
    batch = []
    for busy in kinds:
        if busy:
            batch.append(message(BUSY_SITE, DAY + timedelta(seconds=rng.uniform(0, 86_399)), rng))
        else:
            site = f"site-{rng.randrange(OTHER_SITES):03d}.example"
            batch.append(message(site, DAY + timedelta(seconds=rng.uniform(-3 * 86_400, 4 * 86_400)), rng))
        if len(batch) == INSERT_BATCH:
            event_store.insert_events(db, batch)
            batch = []
    event_store.insert_events(db, batch)
    print(f"stored {events + others} events in {time.monotonic() - started:.0f} s", flush=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@contextmanager
def ferretdb(binary: Path, store: Path, run_dir: Path) -> Iterator[tuple[str, int]]:
    """The FerretDB binary on the store: its URI and pid."""
    port = free_port()
    argv = [str(binary), "-listen-addr", f"127.0.0.1:{port}", "-sqlite-url", f"file:{store}/"]
    process = ManagedProcess("ferretdb", argv, {}, run_dir).start()
    try:
        wait_until(lambda: port_open(port), 30, "FerretDB")
        assert process.process is not None
        yield f"mongodb://127.0.0.1:{port}/analytics", process.process.pid
    finally:
        process.stop()


def time_reads(db: Database[Any], pid: int) -> None:
    end = DAY + timedelta(days=1)
    day = {"_id": event_store.site_range(BUSY_SITE, DAY, end), "timestamp": {"$gte": DAY, "$lt": end}}
    print("| read (projection) | batch | events | wall s | FerretDB CPU ms per 1,000 events |")
    print("|---|---|---|---|---|")
    for name, projection in PROJECTIONS.items():
        for batch in (1000, 10_000):
            cursor = db[event_store.EVENTS].find(day, projection).batch_size(batch)
            if "sorted" in name:
                cursor = cursor.sort("_id", 1)
            cpu, wall = cpu_seconds(pid), time.monotonic()
            count = sum(1 for _ in cursor)
            cpu, wall = cpu_seconds(pid) - cpu, time.monotonic() - wall
            print(
                f"| {name} | {batch} | {count} | {wall:.2f} | {1e6 * cpu / max(count, 1):.1f} |", flush=True
            )


def time_aggregated(env: dict[str, str], run_dir: Path, pid: int, requests_: int) -> None:
    with bench_redis(run_dir) as redis_url:
        service_env = env | {
            "REDIS_URL": redis_url,
            "AUTH_MODE": "open",
            "CACHE_LIVE_SECONDS": "0",
            "CACHE_PAST_SECONDS": "0",
            "WEB_CONCURRENCY": "1",
        }
        with (
            gunicorn("wsgi:reporting", service_env, run_dir, []) as (base_url, _),
            requests.Session() as session,
        ):
            for _ in range(requests_):
                cpu, wall = cpu_seconds(pid), time.monotonic()
                params = {"site_id": BUSY_SITE, "date": f"{DAY:%Y-%m-%d}"}
                response = session.get(f"{base_url}/stats/aggregated", params=params, timeout=120)
                cpu, wall = cpu_seconds(pid) - cpu, time.monotonic() - wall
                print(
                    f"/stats/aggregated: {response.status_code} in {wall:.2f} s, FerretDB CPU {cpu:.2f} s",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="the busy site-day's events")
    parser.add_argument("--others", type=int, default=200_000, help="other sites' events")
    parser.add_argument(
        "--store", type=Path, help="FerretDB's data directory, kept (default: a temporary one)"
    )
    parser.add_argument(
        "--ferretdb", type=Path, default=Path(".local/bin/ferretdb"), help="the server's binary"
    )
    parser.add_argument("--requests", type=int, default=5, help="/stats/aggregated requests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ferretdb-reads-") as tmp:
        run_dir = Path(tmp)
        store = args.store or run_dir / "store"
        store.mkdir(parents=True, exist_ok=True)
        with ferretdb(args.ferretdb.resolve(), store.resolve(), run_dir) as (uri, pid):
            client: MongoClient[dict[str, Any]] = MongoClient(uri, socketTimeoutMS=3_600_000)
            db = client.get_default_database()
            if db[event_store.EVENTS].estimated_document_count() == 0:
                load(db, args.events, args.others)
            time_reads(db, pid)
            client.close()
            time_aggregated(
                {**os.environ, "MONGO_URI": uri, "MONGO_TIMEOUT_MS": "120000"}, run_dir, pid, args.requests
            )


if __name__ == "__main__":
    main()
