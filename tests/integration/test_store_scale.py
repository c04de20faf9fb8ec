"""A tiny site's answers inside a store of several hundred thousand events of other sites
(issue #26): exact, well within the time bound, while a worker writes, and every raw read
served from an index (FerretDB's `explain`), never by a scan of the collection.

The store is built once per STORE_VERSION, straight into FerretDB (no HTTP, no worker), and
its SQLite file kept under .local/test-stores/; each run starts a FerretDB on a copy of it.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from pymongo import MongoClient, monitoring
from pymongo.database import Database

from app import create_app, migrations
from app.queue.publish import publish
from app.settings import Settings
from app.store import events as event_store
from app.store import is_ferretdb
from tests.integration.client import TIMEOUT, get_stats
from tests.integration.services import serve
from tools.local_services import mongo_argv
from tools.processes import ROOT, ManagedProcess, start_local_server, start_worker, wait_until

# The Redis database of this module's processes (test_redis_transport.py takes 7).
BIG_REDIS_DB = 8

# Bump when the events' layout or this store's contents change: the cached file is rebuilt.
STORE_VERSION = "events-by-site-time-2"
OTHER_EVENTS = 300_000
OTHER_SITES = 300
DATABASE = "big"
TINY_SITE = "tiny-site"
DAY = date(2025, 11, 15)
ZONES = ["Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns"]


def other_events(count: int) -> Iterator[dict[str, Any]]:
    """Stored documents of other sites, over the three days around DAY."""
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) - timedelta(days=1)
    now = datetime.now(UTC)
    for n in range(count):
        moment = start + timedelta(seconds=(n * 7919) % (3 * 86400), milliseconds=n % 1000)
        message = {
            "site_id": f"other-{n % OTHER_SITES}",
            "event_type": "page_view",
            "path": f"/p{n % 50}",
            "user_id": f"u{n % 997}",
            "timestamp": moment.isoformat(),
            "event_id": str(uuid.UUID(int=n)),
        }
        yield event_store.event_document(message, now, batch_id="prefilled")


def fill(db: Database[Any], count: int) -> None:
    """Other sites' events, as this release stores them (no step to migrate)."""
    event_store.ensure_indexes(db)
    migrations.record_all(db, "written by this release")
    batch: list[dict[str, Any]] = []
    for document in other_events(count):
        batch.append(document)
        if len(batch) == 10_000:
            db[event_store.EVENTS].insert_many(batch, ordered=False)
            batch = []
    if batch:
        db[event_store.EVENTS].insert_many(batch, ordered=False)


def cached_store(run_dir: Path) -> Path:
    """The SQLite file of the store, built now if this version has none yet."""
    cached = ROOT / ".local" / "test-stores" / STORE_VERSION / f"{DATABASE}.sqlite"
    if not cached.exists():
        build_dir = run_dir / "store-build"
        server = start_local_server("store-build", mongo_argv, run_dir)
        client: MongoClient[dict[str, Any]] = MongoClient(
            f"mongodb://127.0.0.1:{server.port}/", tz_aware=True
        )
        fill(client[DATABASE], OTHER_EVENTS)
        client.close()
        server.stop()
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(build_dir / f"{DATABASE}.sqlite", cached.with_suffix(".tmp"))
        cached.with_suffix(".tmp").rename(cached)
    return cached


@pytest.fixture(scope="module")
def big_mongo_uri(run_dir: Path) -> Iterator[str]:
    if os.environ.get("MONGO_URI"):
        base = os.environ["MONGO_URI"].split("?")[0].rstrip("/").rsplit("/", 1)[0]
        client: MongoClient[dict[str, Any]] = MongoClient(os.environ["MONGO_URI"])
        database = f"big_{uuid.uuid4().hex[:8]}"
        fill(client[database], OTHER_EVENTS)
        yield f"{base}/{database}"
        client.drop_database(database)
        return
    data_dir = run_dir / "big-mongo"
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached_store(run_dir), data_dir / f"{DATABASE}.sqlite")
    server = start_local_server("big-mongo", mongo_argv, run_dir)
    yield f"mongodb://127.0.0.1:{server.port}/{DATABASE}"
    server.stop()


@pytest.fixture(scope="module")
def big_env(service_env: dict[str, str], big_mongo_uri: str) -> dict[str, str]:
    """The session's settings with the big store, and a Redis database of its own: on the
    session's, the session's worker would take some of this test's messages and rollup
    deltas and store them in the session's store."""
    redis_url = urlsplit(service_env["REDIS_URL"])._replace(path=f"/{BIG_REDIS_DB}").geturl()
    return {**service_env, "MONGO_URI": big_mongo_uri, "REDIS_URL": redis_url}


@pytest.fixture(scope="module")
def big_db(big_mongo_uri: str) -> Iterator[Database[Any]]:
    client: MongoClient[dict[str, Any]] = MongoClient(big_mongo_uri, tz_aware=True)
    yield client.get_default_database()
    client.close()


@pytest.fixture(scope="module")
def big_worker(big_env: dict[str, str], run_dir: Path) -> Iterator[ManagedProcess]:
    process = start_worker("big-worker", big_env, run_dir)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def big_reporting(big_env: dict[str, str], run_dir: Path, big_worker: ManagedProcess) -> Iterator[str]:
    yield from serve("reporting", big_env, run_dir, name="big-reporting")


def tiny_events() -> list[dict[str, Any]]:
    """24 events on DAY, at times whose local day differs by zone (half and quarter hours)."""
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) - timedelta(hours=4)
    return [
        {
            "site_id": TINY_SITE,
            "event_type": "page_view",
            "path": f"/t{n % 3}",
            "user_id": f"tiny-{n % 5}",
            "timestamp": (start + timedelta(hours=n * 1.3, minutes=n * 7)).isoformat(),
            "event_id": str(uuid.uuid4()),
        }
        for n in range(24)
    ]


def expected(events: list[dict[str, Any]], zone: str) -> dict[str, Any]:
    local = [
        e for e in events if datetime.fromisoformat(e["timestamp"]).astimezone(ZoneInfo(zone)).date() == DAY
    ]
    return {
        "total_views": len(local),
        "unique_users": len({e["user_id"] for e in local}),
        "paths": Counter(e["path"] for e in local),
    }


def answered(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "total_views": body["total_views"],
        "unique_users": body["unique_users"],
        "paths": Counter({row["path"]: row["views"] for row in body["top_paths"]}),
    }


def stats(reporting_url: str, endpoint: str, zone: str) -> dict[str, Any]:
    params = {"site_id": TINY_SITE, "date": DAY.isoformat(), "tz": zone}
    response = requests.get(f"{reporting_url}{endpoint}", params=params, timeout=TIMEOUT)
    assert response.status_code == 200, (endpoint, zone, response.text)
    body: dict[str, Any] = response.json()
    return body


def publish_from(env: dict[str, str], messages: list[dict[str, Any]]) -> None:
    with create_app(
        "ingestion", Settings(redis_url=env["REDIS_URL"], mongo_uri=env["MONGO_URI"])
    ).app_context():
        publish(messages, uuid.uuid4().hex)


class Writer(threading.Thread):
    """Other sites' events published in batches until stopped: the worker writes meanwhile."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.env = env
        self.stopping = threading.Event()
        self.sent = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            moment = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
            batch = [
                {
                    "site_id": f"writer-{n % 10}",
                    "event_type": "page_view",
                    "path": "/w",
                    "user_id": f"w{n}",
                    "timestamp": moment.isoformat(),
                    "event_id": str(uuid.uuid4()),
                }
                for n in range(100)
            ]
            publish_from(self.env, batch)
            self.sent += len(batch)
            self.stopping.wait(0.2)


class Commands(monitoring.CommandListener):
    """The commands a client sends, to explain them after."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "aggregate"):
            command = {k: v for k, v in event.command.items() if k not in ("lsid", "$db", "$clusterTime")}
            self.sent.append(command)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_a_tiny_site_in_a_big_store_is_answered_exactly_from_an_index_while_a_worker_writes(
    big_env, big_db, big_reporting, figures
):
    # (Not a count: FerretDB counts a collection by reading all of it.)
    assert big_db[event_store.EVENTS].find_one({"_id": event_store.site_range(f"other-{OTHER_SITES - 1}")})
    events = tiny_events()
    publish_from(big_env, events)
    wait_until(
        lambda: (
            get_stats(big_reporting, TINY_SITE, DAY.isoformat())["total_views"]
            == expected(events, "UTC")["total_views"]
        ),
        60,
        "the tiny site's events in the rollups",
    )
    writer = Writer(big_env)
    writer.start()
    try:
        timings = {}
        for zone in ["UTC", *ZONES]:
            started = time.monotonic()
            body = stats(big_reporting, "/stats", zone)
            timings[zone] = time.monotonic() - started
            assert answered(body) == expected(events, zone), zone
        started = time.monotonic()
        aggregated = stats(big_reporting, "/stats/aggregated", "UTC")
        timings["/stats/aggregated"] = time.monotonic() - started
        assert answered(aggregated) == expected(events, "UTC")
    finally:
        writer.stopping.set()
        writer.join()
    assert writer.sent > 0
    figures.append(
        "store scale: "
        + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in timings.items())
        + f" ({writer.sent} events written meanwhile)"
    )


def test_every_raw_read_of_a_site_day_is_served_from_an_index(big_mongo_uri):
    commands = Commands()
    client: MongoClient[dict[str, Any]] = MongoClient(
        big_mongo_uri, tz_aware=True, event_listeners=[commands]
    )
    db = client.get_default_database()
    if not is_ferretdb(db):
        pytest.skip("the plans checked are FerretDB's (MongoDB serves `_id` ranges from its own index)")
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    event_store.events_between(db, "other-7", start, end)
    event_store.count_by_user_and_path(db, "other-7", start, end, "page_view")
    next(event_store.iter_site_events(db, "other-7", start, end, batch_size=10))
    event_store.expired_keys(db, "other-7", end, 10)
    assert len(commands.sent) == 4
    for command in commands.sent:
        plan = db.command("explain", command)
        steps = plan["queryPlanner"]["Plan"]
        assert plan["filterPushdown"], command
        assert any("USING INDEX" in step for step in steps), (command, steps)
        assert not any("detail=SCAN" in step for step in steps), (command, steps)
    client.close()
