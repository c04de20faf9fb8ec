"""Reporting latency over a synthetic data set, with the answer cache off and on.

    .venv/bin/python -m bench.reporting [--events 1000000] [--loader auto] [--requests 100]

It starts a fresh Redis and MongoDB server on loopback, loads N events of 100 sites over the
30 UTC days ending yesterday (Zipf-distributed sites, paths and users, a daily cycle) through
the worker's own `store_batch` and `compactor.compact`, or above a million events with a bulk
loader that stores the same documents and rollups in fewer writes, checks that `/stats` equals
`/stats/aggregated`, then times `/stats`, `/stats/timeseries`, `/stats/breakdown`, the
dashboard's page and, last, `/stats/aggregated` (waiting at most `--scan-seconds`) on one
gunicorn reporting process, sequentially over one keep-alive connection. It prints figures
and never asserts them; everything stops at the end.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import statistics
import tempfile
import time
import uuid
from bisect import bisect
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate, islice, pairwise
from pathlib import Path
from typing import Any

import redis
import requests
from pymongo.database import Database

from app import create_app, migrations
from app.enrichment import enrich
from app.extensions import mongo, redis_store
from app.ingestion.schemas import to_message
from app.rollups import compactor, user_ids
from app.rollups.buckets import Bucket
from app.rollups.caps import DEFAULT_CAPS, CappedTally, bucket_tallies
from app.rollups.tally import Tally
from app.rollups.user_ids import numbered_locally
from app.settings import Settings
from app.store import events as event_store
from app.store import rollups as rollup_store
from app.store import user_numbers
from bench.ingest import gunicorn
from bench.worker import pid_of, process_tree_cpu, servers
from bench.writer import worker_writing
from reporting.queries import summarise
from reporting.schemas import stats_query_schema
from tasks.persist import store_batch
from tools.factories import BROWSER_USER_AGENT
from tools.local_services import mongo_argv

DAYS = 30
SITES = 100
PATHS_PER_SITE = 500
SITE_EXPONENT = 1.1
PATH_EXPONENT = 1.1
EVENTS_PER_USER = 5
# A user's index in the site's pool is pool * u**USER_SKEW for uniform u: a few users come often.
USER_SKEW = 2.0
EVENT_TYPES = {"page_view": 0.90, "click": 0.08, "signup": 0.02}
# Traffic over a UTC day: 1 + DAILY_SWING * cos(...), highest at PEAK_HOUR.
DAILY_SWING = 0.6
PEAK_HOUR = 15
SEED = 20251115
# One more site, with a day of BUSY_DAY_EVENTS events (`--busy-day-events`) BUSY_DAY days
# before the last day: a 100k-events site-day among the others' (issue #26).
BUSY_SITE = "site-busy"
BUSY_DAY = 1
BUSY_DAY_EVENTS = 100_000
BUSY_SIGNED_IN = 0.3  # share of the busy site's events that carry a user id

BATCH_SIZE = 1000
COMPACT_EVERY = 20  # batches
INSERT_CHUNK = 20_000  # events a bulk loader's insert_many
ROLLUPS_PER_INSERT = 1000
# The worker loader takes about 12 minutes a million events here; above this, `auto` loads in bulk.
WORKER_LOADER_LIMIT = 1_000_000
PROGRESS_EVERY = 100_000  # events
SAVED_LOAD = "loaded.json"  # in `--keep`'s directory: what was loaded there
WARM_UP = 5
# Ask for the defaults explicitly, so a `.env` turning the cache off does not skew "on".
CACHE_ENV = {
    "off": {"CACHE_LIVE_SECONDS": "0", "CACHE_PAST_SECONDS": "0"},
    "on": {
        "CACHE_LIVE_SECONDS": str(Settings.cache_live_seconds),
        "CACHE_PAST_SECONDS": str(Settings.cache_past_seconds),
    },
}
# FerretDB answers counts and `/stats/aggregated` by scanning every stored event (only `_id`
# lookups use an index): 93 s at 1M events, longer than the default 10 s socket timeout.
SCAN_TIMEOUT_SECONDS = 3600
SCAN_TIMEOUT_ENV = {"MONGO_TIMEOUT_MS": str(SCAN_TIMEOUT_SECONDS * 1000)}
# pymongo's socket timeout is twice MONGO_TIMEOUT_MS: let the server give up first.
REQUEST_TIMEOUT = 3 * SCAN_TIMEOUT_SECONDS
AGGREGATED_DAY = "/stats/aggregated, busiest site-day"
DASHBOARD_MONTH = "/dashboard, busiest site, 30 days"
BUSY_STATS = "/stats, busy site-day"
BUSY_AGGREGATED = "/stats/aggregated, busy site-day"
# Each checked `/stats` row, and the `/stats/aggregated` row of the same question, if timed.
CHECKED = {
    "/stats, busiest site-day": AGGREGATED_DAY,
    "/stats, busiest site, 30 days": None,
    BUSY_STATS: BUSY_AGGREGATED,
}
TINY_AGGREGATED = "/stats/aggregated, quietest site-day"
TINY_EXPORT = "/events/export, quietest site-day, first byte"
# Time zones whose offset is not a whole hour (issue #26).
ZONES = ("Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns")
# p95 targets, ms, cache off: a label ending in `*` stands for every label it begins.
TARGETS_MS = {
    "/stats, busiest site-day": 20.0,
    "/stats, busiest site, 30 days": 100.0,
    "/stats, quietest site-day, tz=*": 20.0,
    TINY_AGGREGATED: 100.0,
    BUSY_AGGREGATED: 2000.0,
    "/events/export, *": 100.0,
}


def zipf_cumulative(count: int, exponent: float) -> list[float]:
    """Cumulative Zipf weights of ranks 1..count."""
    return list(accumulate(rank**-exponent for rank in range(1, count + 1)))


def pick(cumulative: Sequence[float], rng: random.Random) -> int:
    """An index drawn with the weights whose running sums are `cumulative`."""
    return bisect(cumulative, rng.random() * cumulative[-1])


def hourly_counts(events: int, hours: int) -> list[int]:
    """`events` spread over `hours` consecutive UTC hours (from midnight) with a daily cycle."""
    weights = [
        1 + DAILY_SWING * math.cos(2 * math.pi * (hour % 24 - PEAK_HOUR) / 24) for hour in range(hours)
    ]
    total = sum(weights)
    bounds = [round(events * running / total) for running in accumulate(weights)]
    return [upper - lower for lower, upper in pairwise([0, *bounds])]


def site_paths() -> list[str]:
    """PATHS_PER_SITE paths, most visited first; some hold `.`."""
    templates = ("/blog/post-{n}", "/docs/v2.{m}/page-{n}", "/products/{n}", "/files/report-{n}.pdf")
    return ["/"] + [templates[n % 4].format(n=n, m=n % 10) for n in range(1, PATHS_PER_SITE)]


class Traffic:
    """N deterministic events of `sites` sites over `days` UTC days ending yesterday, in time order."""

    def __init__(
        self,
        events: int,
        seed: int = SEED,
        days: int = DAYS,
        sites: int = SITES,
        busy_day_events: int = 0,
        first_day: date | None = None,
    ) -> None:
        self.events = events
        self.seed = seed
        self.days = days
        self.first_day = first_day or datetime.now(UTC).date() - timedelta(days=days)
        # Of `events`, those of BUSY_SITE on BUSY_DAY days before the last; the rest are the
        # Zipf-distributed sites'.
        self.busy_day_events = min(busy_day_events, events)
        self.busy_day = self.first_day + timedelta(days=max(0, days - 1 - BUSY_DAY))
        events -= self.busy_day_events
        self.site_ids = [f"site-{rank:03d}" for rank in range(1, sites + 1)]
        self.site_weights = zipf_cumulative(sites, SITE_EXPONENT)
        self.path_weights = zipf_cumulative(PATHS_PER_SITE, PATH_EXPONENT)
        self.paths = site_paths()
        self.type_weights = list(accumulate(EVENT_TYPES.values()))
        self.types = list(EVENT_TYPES)
        shares = [high - low for low, high in pairwise([0.0, *self.site_weights])]
        total = self.site_weights[-1]
        self.user_pools = [max(1, round(events * share / total / EVENTS_PER_USER)) for share in shares]

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=self.days - 1)

    def messages(self) -> Iterator[dict[str, Any]]:
        """Queue messages in the shape of `app.schemas.to_message`, one hour at a time, the busy
        site's among the others' in time order (so that its rows lie among theirs)."""
        rng = random.Random(self.seed)
        busy_rng = random.Random(self.seed + 1)  # the other sites' traffic stays the same
        midnight = datetime.combine(self.first_day, datetime.min.time(), tzinfo=UTC)
        busy_hours = hourly_counts(self.busy_day_events, 24)
        first_busy_hour = (self.busy_day - self.first_day).days * 24
        for hour, count in enumerate(hourly_counts(self.events - self.busy_day_events, self.days * 24)):
            start = midnight + timedelta(hours=hour)
            busy = busy_hours[hour - first_busy_hour] if 0 <= hour - first_busy_hour < 24 else 0
            others = ((float(second), False) for second in sorted(rng.randrange(3600) for _ in range(count)))
            busies = ((second, True) for second in sorted(busy_rng.uniform(0, 3600) for _ in range(busy)))
            for second, is_busy in heapq.merge(others, busies):
                moment = start + timedelta(seconds=second)
                yield self.busy_message(busy_rng, moment) if is_busy else self.message(rng, moment)

    def message(self, rng: random.Random, moment: datetime) -> dict[str, Any]:
        site = pick(self.site_weights, rng)
        user = int(self.user_pools[site] * rng.random() ** USER_SKEW)
        return {
            "site_id": self.site_ids[site],
            "event_type": self.types[pick(self.type_weights, rng)],
            "path": self.paths[pick(self.path_weights, rng)],
            "user_id": f"user-{site + 1}-{user}",
            "timestamp": moment.isoformat(),
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        }

    def busy_message(self, rng: random.Random, moment: datetime) -> dict[str, Any]:
        """An event of the busy site as a browser's tag sends it and the worker stores it: the
        page's fields and what the worker derives (about 600 bytes of BSON, against about 200
        for the other sites' bare events), since its day is read raw."""
        page = self.paths[pick(self.path_weights, rng)]
        visitor = int(self.busy_day_events / EVENTS_PER_USER * rng.random() ** USER_SKEW)
        sent = {
            "site_id": BUSY_SITE,
            "event_type": self.types[pick(self.type_weights, rng)],
            "url": f"https://busy.example{page}?utm_source=news&utm_campaign=c{rng.randrange(9)}",
            "referrer": "https://www.google.com/search?q=analytics",
            "title": f"Page {page}",
            "screen": "1920x1080",
            "language": "en-US",
            "props": {"plan": "pro", "n": rng.randrange(5)},
            "user_agent": BROWSER_USER_AGENT,
            "timestamp": moment.isoformat(),
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        }
        if rng.random() < BUSY_SIGNED_IN:
            sent["user_id"] = f"user-busy-{visitor}"
        visitor_id = uuid.UUID(int=visitor, version=4).hex
        return enrich(to_message(sent)) | {"visitor_id": visitor_id, "country": "DE"}


def batches(messages: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(messages)
    while batch := list(islice(iterator, size)):
        yield batch


@dataclass
class Loaded:
    """What loading stored, and where the time went."""

    loader: str
    events: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds by phase
    stored_events: int = 0
    rollups: int = 0
    site_days: Counter[tuple[str, str]] = field(default_factory=Counter)

    def zipf_site_days(self) -> Counter[tuple[str, str]]:
        """The site-days of the Zipf-distributed sites: all but the busy site's."""
        return Counter({site_day: n for site_day, n in self.site_days.items() if site_day[0] != BUSY_SITE})

    def busiest_site_day(self) -> tuple[str, str]:
        """The busiest site-day of the Zipf-distributed sites (not the busy site's day)."""
        return self.zipf_site_days().most_common(1)[0][0]

    def quietest_site_day(self) -> tuple[str, str]:
        """The site-day with the fewest events: a tiny site among busier ones."""
        return min(self.site_days, key=lambda site_day: (self.site_days[site_day], site_day))

    def busiest_site(self) -> str:
        per_site: Counter[str] = Counter()
        for (site_id, _), count in self.zipf_site_days().items():
            per_site[site_id] += count
        return per_site.most_common(1)[0][0]

    def saved(self) -> dict[str, Any]:
        """What `--keep` needs to ask about a store loaded by an earlier run."""
        days = [[site_id, day, n] for (site_id, day), n in self.site_days.items()]
        return {"loader": self.loader, "events": self.events, "rollups": self.rollups, "site_days": days}

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> Loaded:
        site_days = Counter({(site_id, day): n for site_id, day, n in saved["site_days"]})
        return cls(saved["loader"], saved["events"], rollups=saved["rollups"], site_days=site_days)

    def count(self, batch: Sequence[dict[str, Any]], started: float) -> None:
        """Count a loaded batch, printing progress every PROGRESS_EVERY events."""
        if not self.events:
            check_shape(batch)
        self.site_days.update((m["site_id"], m["timestamp"][:10]) for m in batch)
        self.events += len(batch)
        if self.events % PROGRESS_EVERY < len(batch):
            print_progress(self, time.monotonic() - started)


@contextmanager
def phase(loaded: Loaded, name: str) -> Iterator[None]:
    """Add the time the block takes to the loader's phase `name`."""
    started = time.perf_counter()
    try:
        yield
    finally:
        loaded.phases[name] = loaded.phases.get(name, 0.0) + time.perf_counter() - started


def load_through_worker(db: Database[Any], client: redis.Redis, traffic: Traffic, loaded: Loaded) -> None:
    """Store the traffic as a worker does: `store_batch` per BATCH_SIZE messages, compacting
    every COMPACT_EVERY batches and at the end."""
    migrations.adopt_new_store(db)  # as a worker does when it starts
    event_store.ensure_indexes(db)
    user_numbers.ensure_indexes(db)
    started = time.monotonic()
    for number, batch in enumerate(batches(traffic.messages(), BATCH_SIZE), start=1):
        with phase(loaded, "store_batch"):
            loaded.stored_events += store_batch(db, client, uuid.uuid4().hex, batch)
        if number % COMPACT_EVERY == 0:
            with phase(loaded, "compact"):
                compactor.compact(db, client)
        loaded.count(batch, started)
    with phase(loaded, "compact"):
        compactor.compact(db, client)


def load_in_bulk(db: Database[Any], client: redis.Redis, traffic: Traffic, loaded: Loaded) -> None:
    """Store the same event documents and rollups as `load_through_worker`, in fewer writes.

    Each BATCH_SIZE messages become event documents with a batch id, and their users are
    numbered as the compactor numbers them (`user_ids`), COMPACT_EVERY batches at once as the
    compactor's rounds do (`add_tallies`), so every id is the same. The
    documents are written INSERT_CHUNK at a time by a background thread while the next are
    generated; the rollups' tallies are added up in memory and each rollup is written once,
    holding no stream entry (`compactor.NO_ENTRY`), with every batch marked as added into them.
    The indexes come last, as in any bulk load: built once, they cost a fraction of keeping
    them up to date through millions of inserts.
    `tests/unit/test_bench_reporting.py` checks that both loaders store equal rollups.
    """
    migrations.adopt_new_store(db)  # as a worker does: a store of this release's layout
    started = time.monotonic()
    tallies: dict[Bucket, CappedTally] = {}
    batch_ids: list[str] = []
    chunk: list[dict[str, Any]] = []
    group: list[list[dict[str, Any]]] = []
    with ThreadPoolExecutor(max_workers=1) as writer:
        writing: Future[Any] | None = None
        for batch in batches(traffic.messages(), BATCH_SIZE):
            with phase(loaded, "documents and tallies"):
                batch_ids.append(uuid.uuid4().hex)
                now = datetime.now(UTC)
                documents = [event_store.event_document(message, now, batch_ids[-1]) for message in batch]
                group.append(documents)
                if len(group) == COMPACT_EVERY:
                    add_tallies(db, tallies, group)
                    group = []
                chunk += documents
            if len(chunk) >= INSERT_CHUNK:
                with phase(loaded, "waiting for inserts"):
                    if writing is not None:
                        writing.result()
                writing = writer.submit(db[event_store.EVENTS].insert_many, chunk, ordered=False)
                loaded.stored_events += len(chunk)
                chunk = []
            loaded.count(batch, started)
        with phase(loaded, "documents and tallies"):
            add_tallies(db, tallies, group)
        with phase(loaded, "waiting for inserts"):
            if writing is not None:
                writing.result()
            if chunk:
                db[event_store.EVENTS].insert_many(chunk, ordered=False)
                loaded.stored_events += len(chunk)
    with phase(loaded, "rollups"):
        rollups = [
            rollup_store.rollup_document(bucket, capped.tally, compactor.NO_ENTRY)
            for bucket, capped in tallies.items()
        ]
        for rows in batches(rollups, ROLLUPS_PER_INSERT):
            db[rollup_store.ROLLUPS].insert_many(rows, ordered=False)
        # Marked in every shard: a batch has no entry in a shard without its sites, so a marker
        # there is never looked at.
        markers = [
            compactor.marker(batch_id, shard) for batch_id in batch_ids for shard in range(compactor.SHARDS)
        ]
        rollup_store.mark_batches_applied(db, markers)
    with phase(loaded, "indexes"):
        event_store.ensure_indexes(db)


def add_tallies(
    db: Database[Any], tallies: dict[Bucket, CappedTally], group: list[list[dict[str, Any]]]
) -> None:
    """Add a group of batches' event documents into `tallies`, batch by batch, their users
    numbered all at once, as a compactor's round numbers the users of its entries."""
    numbered = iter(user_ids.numbered(db, [document for batch in group for document in batch]))
    for batch in group:
        for bucket, tally in bucket_tallies(list(islice(numbered, len(batch))), DEFAULT_CAPS).items():
            tallies.setdefault(bucket, CappedTally(Tally(), DEFAULT_CAPS)).add(tally)


LOADERS = {"worker": load_through_worker, "bulk": load_in_bulk}


def load(env: dict[str, str], traffic: Traffic, loader: str) -> Loaded:
    """Load the traffic into fresh servers with one of LOADERS."""
    loaded = Loaded(loader)
    flask_app = create_app("worker", Settings.from_env(env | SCAN_TIMEOUT_ENV))
    with flask_app.app_context():
        db, client = mongo.db, redis_store.client
        started = time.monotonic()
        LOADERS[loader](db, client, traffic, loaded)
        loaded.seconds = time.monotonic() - started
        if backlog := compactor.backlog(client):
            print(f"  warning: {backlog} batches still wait for compaction")
        loaded.rollups = db[rollup_store.ROLLUPS].estimated_document_count()
        mongo.close()
        redis_store.close()
    return loaded


def check_shape(messages: Sequence[dict[str, Any]]) -> None:
    """Fail early if the generated messages differ from what ingestion would queue (the busy
    site's carry what ingestion and the worker add)."""
    for message in messages:
        if message["site_id"] == BUSY_SITE:
            continue
        if to_message(message) != message:
            raise ValueError(f"not in the shape of to_message: {message}")


def print_progress(loaded: Loaded, seconds: float) -> None:
    print(
        f"  {loaded.events:>10,} events  {seconds:7.1f} s  {loaded.events / seconds:8,.0f} events/s  "
        f"({describe_phases(loaded)})",
        flush=True,
    )


def describe_phases(loaded: Loaded) -> str:
    return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in loaded.phases.items())


def print_load(loaded: Loaded) -> None:
    site_id, day = loaded.busiest_site_day()
    site = loaded.busiest_site()
    print(
        f"loaded {loaded.events:,} events with the {loaded.loader} loader in {loaded.seconds:.1f} s "
        f"({loaded.events / loaded.seconds:,.0f} events/s): {describe_phases(loaded)}"
    )
    print(f"stored: {loaded.stored_events:,} new events, {loaded.rollups:,} rollup documents")
    print(
        f"busiest site-day: {site_id} {day}, {loaded.site_days[(site_id, day)]:,} events; busiest site: "
        f"{site}, {sum(n for (s, _), n in loaded.site_days.items() if s == site):,} events"
    )


@dataclass(frozen=True)
class Query:
    label: str
    path: str
    params: dict[str, str]
    # Read by `_id` range, seconds a request at a busy site-day: timed last, with no warm-up.
    scans_raw_events: bool = False
    # Timed to the answer's first byte (a stream), not to its end.
    first_byte: bool = False

    def covers(self, message: dict[str, Any]) -> bool:
        """Whether a generated event is in this query's site and UTC days."""
        first = self.params.get("date") or self.params["start"]
        last = self.params.get("date") or self.params["end"]
        return message["site_id"] == self.params["site_id"] and first <= message["timestamp"][:10] <= last


def queries(loaded: Loaded, traffic: Traffic) -> list[Query]:
    """The rows of the table: the busiest site-day and the busiest site over all 30 days of the
    Zipf-distributed sites, the quietest site-day (a tiny site in the store) and, when the
    traffic has one, the busy site's day. The first two, and the busy site-day, are the ones
    checked for exactness (`checked_rows`)."""
    day_site, day = loaded.busiest_site_day()
    site = loaded.busiest_site()
    one_day = {"site_id": day_site, "date": day}
    quiet_site, quiet_day = loaded.quietest_site_day()
    tiny_day = {"site_id": quiet_site, "date": quiet_day}
    busy_day = {"site_id": BUSY_SITE, "date": traffic.busy_day.isoformat()}
    tiny_export = {"site_id": quiet_site, "start": quiet_day, "end": quiet_day}
    busy_export = {"site_id": BUSY_SITE, "start": busy_day["date"], "end": busy_day["date"]}
    month = {"site_id": site, "start": traffic.first_day.isoformat(), "end": traffic.last_day.isoformat()}
    rows = [
        Query("/stats, busiest site-day", "/stats", one_day),
        Query("/stats, busiest site, 30 days", "/stats", month),
        Query("/stats, 30 days, tz=Europe/Berlin", "/stats", month | {"tz": "Europe/Berlin"}),
        Query("/stats/timeseries, 30 days, day", "/stats/timeseries", month | {"interval": "day"}),
        Query("/stats/timeseries, busiest day, hour", "/stats/timeseries", one_day | {"interval": "hour"}),
        Query("/stats/breakdown?by=path, 30 days", "/stats/breakdown", month | {"by": "path", "limit": "10"}),
        # The whole page: its figures, chart and every table (it ignores `site_id`).
        Query(DASHBOARD_MONTH, f"/dashboard/{site}", month),
        *(Query(f"/stats, quietest site-day, tz={tz}", "/stats", tiny_day | {"tz": tz}) for tz in ZONES),
        Query(TINY_AGGREGATED, "/stats/aggregated", tiny_day),
        Query(TINY_EXPORT, "/events/export", tiny_export, first_byte=True),
        Query(AGGREGATED_DAY, "/stats/aggregated", one_day, scans_raw_events=True),
    ]
    if not traffic.busy_day_events:
        return rows
    busy_rows = [
        Query(BUSY_STATS, "/stats", busy_day),
        Query("/stats, busy site-day, tz=Asia/Kolkata", "/stats", busy_day | {"tz": "Asia/Kolkata"}),
        Query("/events/export, busy site-day, first byte", "/events/export", busy_export, first_byte=True),
        Query(BUSY_AGGREGATED, "/stats/aggregated", busy_day, scans_raw_events=True),
    ]
    return rows + busy_rows


def checked_rows(rows: Sequence[Query]) -> list[Query]:
    """The rows whose `/stats` answer is checked against the generated events and against
    `/stats/aggregated` of the same question."""
    return [row for row in rows if row.label in CHECKED]


def expected_summaries(traffic: Traffic, checked: Sequence[Query]) -> dict[str, dict[str, Any]]:
    """What `/stats` must answer for the checked queries, counted from the generated events."""
    matched: dict[str, list[dict[str, Any]]] = {query.label: [] for query in checked}
    for message in traffic.messages():
        for query in checked:
            if query.covers(message):
                matched[query.label].append(message)
    limit = stats_query_schema.fields["limit"].load_default
    return {
        label: summarise(Tally.of(numbered_locally(messages)), limit).body()
        for label, messages in matched.items()
    }


@dataclass(frozen=True)
class Timing:
    query: Query
    cache: str
    seconds: list[float]
    hits: int
    last_answer: dict[str, Any]
    mongo_cpu_seconds: float  # used by the MongoDB server during the timed requests
    cut_short: bool  # stopped by the time budget before its count of requests

    def percentile(self, percent: int) -> float:
        """Milliseconds below which `percent`% of the requests finished."""
        if len(self.seconds) == 1:
            return self.seconds[0] * 1000
        return statistics.quantiles(self.seconds, n=100, method="inclusive")[percent - 1] * 1000


def fetch(
    session: requests.Session, url: str, params: dict[str, str], timeout: float, stream: bool = False
) -> requests.Response:
    response = session.get(url, params=params, timeout=timeout, stream=stream)
    response.raise_for_status()
    return response


def measure(
    session: requests.Session,
    base_url: str,
    query: Query,
    args: argparse.Namespace,
    cache: str,
    mongo_pid: int,
) -> Timing:
    """Warm up, then time up to the row's count of requests, stopping once its time budget
    is spent (after at least one). Rows that scan raw events take seconds a request, and
    earlier rows have warmed the process and its connections: no warm-up for them, and each
    request waits at most `--scan-seconds` (`requests.Timeout` beyond)."""
    url = base_url + query.path
    count = args.aggregated_requests if query.scans_raw_events else args.requests
    timeout = args.scan_seconds if query.scans_raw_events else REQUEST_TIMEOUT
    deadline = time.monotonic() + args.row_seconds
    for _ in range(0 if query.scans_raw_events else WARM_UP):
        fetch(session, url, query.params, timeout)
    seconds: list[float] = []
    hits = 0
    answer: dict[str, Any] = {}
    mongo_cpu = process_tree_cpu(mongo_pid)
    while len(seconds) < count and (not seconds or time.monotonic() < deadline):
        started = time.perf_counter()
        response = fetch(session, url, query.params, timeout, stream=query.first_byte)
        if query.first_byte:
            next(response.iter_content(1), b"")
        seconds.append(time.perf_counter() - started)
        response.content  # the rest, if streamed  # noqa: B018
        hits += response.headers.get("X-Cache") == "hit"
        if response.headers["Content-Type"] == "application/json":  # not the dashboard's page
            answer = response.json()
    mongo_cpu = process_tree_cpu(mongo_pid) - mongo_cpu
    return Timing(query, cache, seconds, hits, answer, mongo_cpu, len(seconds) < count)


@contextmanager
def reporting_service(
    env: dict[str, str], run_dir: Path, cache: str
) -> Iterator[tuple[str, requests.Session]]:
    """One gunicorn process of `wsgi:reporting` with the cache off or on, and a keep-alive session."""
    service_env = env | SCAN_TIMEOUT_ENV | CACHE_ENV[cache] | {"WEB_CONCURRENCY": "1"}
    with gunicorn("wsgi:reporting", service_env, run_dir, []) as (base_url, _), requests.Session() as session:
        yield base_url, session


def time_rows(
    session: requests.Session,
    base_url: str,
    rows: Sequence[Query],
    args: argparse.Namespace,
    cache: str,
    mongo_pid: int,
) -> list[Timing]:
    """Time every row, printing each as it ends."""
    print(f"timing, cache {cache}:", flush=True)
    timings = []
    for query in rows:
        timing = measure(session, base_url, query, args, cache, mongo_pid)
        per_request = 1000 * timing.mongo_cpu_seconds / len(timing.seconds)
        print(
            f"  {query.label}: p50 {timing.percentile(50):.1f} ms, p95 {timing.percentile(95):.1f} ms "
            f"over {len(timing.seconds)} requests; MongoDB server CPU {per_request:.1f} ms a request; "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        timings.append(timing)
    return timings


def time_scan(
    session: requests.Session, base_url: str, query: Query, args: argparse.Namespace, mongo_pid: int
) -> Timing | str:
    """Time a row that scans raw events (never cached), or say it gave no answer in time."""
    try:
        return time_rows(session, base_url, [query], args, "off", mongo_pid)[0]
    except requests.Timeout:
        why = no_answer_within(args.scan_seconds)
        print(f"  {query.label}: {why}", flush=True)
        return why


def no_answer_within(seconds: float) -> str:
    return f"no answer within {seconds:g} s"


def aggregated_answer(
    session: requests.Session, base_url: str, query: Query, seconds: float
) -> str | dict[str, Any]:
    """`/stats/aggregated`'s answer to the query, or why there is none within `seconds`."""
    try:
        answer: dict[str, Any] = fetch(session, base_url + "/stats/aggregated", query.params, seconds).json()
    except requests.Timeout:
        return no_answer_within(seconds)
    except requests.HTTPError as error:
        return f"answered {error.response.status_code}"
    return answer


def print_checks(
    expected: dict[str, dict[str, Any]],
    timings: Sequence[Timing],
    aggregated: dict[str, str | dict[str, Any]],
) -> None:
    """Whether `/stats` (cache off) answered exactly what the generated events and
    `/stats/aggregated` (its answer to the same question, or why there is none) say."""
    off = {t.query.label: t.last_answer for t in timings if t.cache == "off"}
    print("\nexactness of /stats, cache off:")
    for label, summary in expected.items():
        answer = off[label]
        print(
            f"  {label}: {answer['total_views']:,} views, {answer['unique_users']:,} users; "
            f"exact vs generated events: {yes_no({key: answer[key] for key in summary} == summary)}; "
            f"equals /stats/aggregated: {same_answer(answer, aggregated[label])}"
        )


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def same_answer(answer: dict[str, Any], other: str | dict[str, Any]) -> str:
    return f"not checked: {other}" if isinstance(other, str) else yes_no(answer == other)


def print_table(rows: Sequence[Query], timings: Sequence[Timing], unanswered: dict[str, str]) -> None:
    """The timed rows in the order of `rows`, then the rows with no answer in time."""
    print(f"\n{'query':<40}{'cache':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'requests':>10}")
    for timing in sorted(timings, key=lambda t: (rows.index(t.query), t.cache != "off")):
        requests_made = f"{len(timing.seconds)}{'*' if timing.cut_short else ''}"
        print(
            f"{timing.query.label:<40}{timing.cache:>6}{timing.percentile(50):>9.1f}"
            f"{timing.percentile(95):>9.1f}{timing.percentile(99):>9.1f}{requests_made:>10}"
        )
    for label, why in unanswered.items():
        print(f"{label:<40}{'off':>6}  {why}")
    if any(timing.cut_short for timing in timings):
        print("* stopped at the row's time budget (--row-seconds)")


def print_ratios(timings: Sequence[Timing]) -> None:
    off = {t.query.label: t for t in timings if t.cache == "off"}
    on = {t.query.label: t for t in timings if t.cache == "on"}
    hits = sum(t.hits for t in on.values())
    requested = sum(len(t.seconds) for t in on.values())
    print(f"\ncache on: {hits} of {requested} timed requests were hits (/stats/aggregated is never cached)")
    print("p95 cache off / p95 cache on:")
    for label, timing in on.items():
        print(f"  {label:<40}{off[label].percentile(95) / timing.percentile(95):>8.1f}x")
    if AGGREGATED_DAY in off:
        aggregated = off[AGGREGATED_DAY].percentile(50)
        stats = off["/stats, busiest site-day"].percentile(50)
        print(f"p50 /stats/aggregated / p50 /stats, busiest site-day, cache off: {aggregated / stats:,.0f}x")
    page, stats = off[DASHBOARD_MONTH].percentile(50), off["/stats, busiest site, 30 days"].percentile(50)
    print(f"p50 dashboard page / p50 /stats, busiest site, 30 days, cache off: {page / stats:.1f}x")
    for label, timing in off.items():
        target = target_ms(label)
        if target is not None:
            p95, slowest = timing.percentile(95), max(timing.seconds) * 1000
            verdict = "met" if p95 < target else "missed"
            print(
                f"target {label}, cache off: p95 {p95:.1f} ms < {target:.0f} ms: {verdict} "
                f"(slowest {slowest:.1f} ms)"
            )


def target_ms(label: str) -> float | None:
    """The row's p95 target, if it has one (TARGETS_MS)."""
    for pattern, target in TARGETS_MS.items():
        if label == pattern or (pattern.endswith("*") and label.startswith(pattern[:-1])):
            return target
    return None


def parse_args() -> argparse.Namespace:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events to load (default 1,000,000)")
    parser.add_argument(
        "--loader",
        choices=[*LOADERS, "auto"],
        default="auto",
        help=f"worker: store_batch and the compactor; bulk: the same documents and rollups in fewer "
        f"writes; auto (default): worker up to {WORKER_LOADER_LIMIT:,} events, bulk above",
    )
    parser.add_argument("--requests", type=int, default=100, help="timed requests a row (default 100)")
    parser.add_argument(
        "--aggregated-requests", type=int, default=20, help="timed /stats/aggregated requests (default 20)"
    )
    parser.add_argument(
        "--row-seconds", type=float, default=20, help="time budget of a row, warm-up included (default 20)"
    )
    parser.add_argument(
        "--verify-seconds",
        type=float,
        default=60,
        help="longest wait for /stats/aggregated over 30 days, the last request made (default 60)",
    )
    parser.add_argument(
        "--scan-seconds",
        type=float,
        default=900,
        help="longest wait for a timed /stats/aggregated request; FerretDB scans every event "
        "(137 s at 1M here), so at 10M it may never answer in a session (default 900)",
    )
    parser.add_argument(
        "--busy-day-events",
        type=int,
        default=BUSY_DAY_EVENTS,
        help=f"events of {BUSY_SITE} on one day, part of --events (default {BUSY_DAY_EVENTS:,})",
    )
    parser.add_argument(
        "--writer-rate",
        type=int,
        default=0,
        help="events a second a worker stores through ingestion while the rows are timed (default 0: none)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the servers' data in this directory; a later run with it asks the store it holds "
        "instead of loading (same --events)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with store_root(args.keep) as root:
        saved = root / SAVED_LOAD
        previous = json.loads(saved.read_text()) if saved.exists() else None
        first_day = date.fromisoformat(previous["first_day"]) if previous else None
        traffic = Traffic(args.events, busy_day_events=args.busy_day_events, first_day=first_day)
        loader = args.loader
        if loader == "auto":
            loader = "worker" if args.events <= WORKER_LOADER_LIMIT else "bulk"
        load_average = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        server = mongo_argv(0, Path())[0]
        print(f"{os.cpu_count()} cores, load average {load_average}; MongoDB server: {server}")
        print(
            f"{'kept' if previous else 'loading'} {args.events:,} events: {SITES} sites, {DAYS} UTC days "
            f"{traffic.first_day}..{traffic.last_day}, and {traffic.busy_day_events:,} of {BUSY_SITE} "
            f"on {traffic.busy_day}; batches of {BATCH_SIZE}, {loader} loader",
            flush=True,
        )
        with servers(root) as (env, mongod):
            if previous:
                loaded = Loaded.from_saved(previous["loaded"])
            else:
                loaded = load(env, traffic, loader)
                print_load(loaded)
                if args.keep:
                    kept = {"first_day": traffic.first_day.isoformat(), "loaded": loaded.saved()}
                    saved.write_text(json.dumps(kept))
            ask(args, env, root, traffic, loaded, pid_of(mongod))


@contextmanager
def store_root(keep: Path | None) -> Iterator[Path]:
    """Where the servers keep their data: `keep`, kept, or a temporary directory."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="bench-reporting-") as tmp:
        yield Path(tmp)


def ask(
    args: argparse.Namespace,
    env: dict[str, str],
    root: Path,
    traffic: Traffic,
    loaded: Loaded,
    mongo_pid: int,
) -> None:
    """Time every row (with the worker writing, given a rate), check the answers, print."""
    rows = queries(loaded, traffic)
    read_rows = [row for row in rows if not row.scans_raw_events]
    raw_rows = [row for row in rows if row.scans_raw_events]
    checked = checked_rows(rows)
    expected = expected_summaries(traffic, checked)
    timings: list[Timing] = []
    unanswered: dict[str, str] = {}
    aggregated: dict[str, str | dict[str, Any]] = {}
    with ExitStack() as stack:
        writing = None
        if args.writer_rate:
            writing = stack.enter_context(worker_writing(env, root, args.writer_rate))
        for cache in CACHE_ENV:
            with reporting_service(env, root, cache) as (base_url, session):
                timings += time_rows(session, base_url, read_rows, args, cache, mongo_pid)
        # Last, with the cache off: a read cut short by the client may go on in the server.
        with reporting_service(env, root, "off") as (base_url, session):
            for row in raw_rows:
                scan = time_scan(session, base_url, row, args, mongo_pid)
                if isinstance(scan, str):
                    unanswered[row.label] = scan
                else:
                    timings.append(scan)
            answers = {t.query.label: t.last_answer for t in timings} | unanswered
            for row in checked:
                same = CHECKED[row.label]
                if same is not None:
                    aggregated[row.label] = answers.get(same, "not asked")
                elif unanswered:  # a timed read had no answer: a longer one would not either
                    aggregated[row.label] = next(iter(unanswered.values()))
                else:
                    aggregated[row.label] = aggregated_answer(session, base_url, row, args.verify_seconds)
        if writing is not None:
            print(writing.summary(), flush=True)
    print_checks(expected, timings, aggregated)
    print_table(rows, timings, unanswered)
    print_ratios(timings)
    print(f"load average at the end: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
