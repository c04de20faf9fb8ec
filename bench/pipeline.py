"""The whole pipeline end to end: from `POST /event(s)` until `/stats` counts the events.

    .venv/bin/python -m bench.pipeline [--prefill 100000] [--seconds 30] [--import-events 300000]
                                       [--rows all|open|closed] [--open-seconds 15]
                                       [--set NAME=VALUE ...]
    .venv/bin/python -m bench.pipeline --soak-minutes 10 [--soak-rate 1000] --prefill 1000000

Everything runs as `make run` runs it, on loopback, with its data in a temporary directory:
Redis (append-only file, fsync always), the MongoDB server (FerretDB on SQLite unless `mongod`
is installed), one Celery worker (`celery -A tasks.worker worker`, default WORKER_CONCURRENCY),
and ingestion and reporting under gunicorn with gunicorn.conf.py as the Procfile starts them
(no `-w`: the conf's default, WEB_CONCURRENCY or one process per core). The store is first
pre-filled with `--prefill` events by bench/reporting.py's bulk loader. Every row posts to site
ids of its own, and after its load waits (at most `--drain-seconds`) until `/stats`, asked
over HTTP for the row's sites and days, counts every event ingestion accepted.

Rows:
  1a  reference: bench/bare_app.py under the same gunicorn config, 1,000 requests/s from 10 clients
  1b  reference: the same, flat out from 64 clients
  2   `POST /event`, one event a request, 1,000/s from 10 clients (hey -c 10 -q 100)
  3   `POST /event` flat out, 64 clients
  4   `POST /events`, batches of 100, flat out, `--batch-clients` clients (16)
  5   wide import: `--import-events` events in 500-event `POST /events` batches, 20 sites over
      the last 30 UTC days, sent by `--senders` Python threads (requests.Session each)
  6   narrow import: as many events the same way, one site, today (run before row 5: the
      compactor rests after a round in proportion to its length, and the wide import's long
      last round would delay the narrow one)

Open-loop rows (bench/open_loop.py; `--rows open` runs only these): vegeta sends single
`POST /event`s at 50, 500 and 1,000 a second for `--open-seconds`, whatever the answers'
latency, first to the bare endpoint, then to ingestion; each with its latency from the send
time, timeouts, drain and CPU per 1,000 events per process, in a table of their own.

Columns:
  offered    events/s sent (fixed-rate rows: the rate asked of hey)
  served     events/s accepted: ingestion's accepted counter over the load's seconds
  p50, p99   a request's latency, ms
  queue      queued messages, max over load and drain / at the load's end (sampled every 0.5 s)
  backlog    stored batches not yet added into the rollups, max / at the load's end
  drain s    from the load's end until `/stats` counted every accepted event
  e2e        end to end: accepted events / (load seconds + drain seconds)
  CPU ms/1k  CPU time per 1,000 accepted events over load and drain, by process tree:
             ingestion (gunicorn), worker (celery), Redis, MongoDB server
Then each row against the reference, and the targets as met or not met.

`--soak-minutes M` runs instead of the rows: single events at `--soak-rate` for M minutes,
printing each minute's end-to-end rate (the worker's persisted counter) and the size of the
MongoDB data directory, then whether the rate held and the files stayed bounded.
It prints figures and never asserts them; every process it started stops at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import redis
import requests

from app.queue import counters, snapshot
from app.rollups import compactor
from app.settings import Settings
from bench.ingest import Verdict, gunicorn, gunicorn_summary, hey_statuses, parse_hey
from bench.loads import Load, percentile
from bench.open_loop import OPEN_RATES, open_loop, open_loop_verdicts, print_open_table
from bench.reporting import Traffic, load
from bench.worker import pid_of, process_tree_cpu, servers
from tools.factories import make_event, new_site_id
from tools.local_services import mongo_argv
from tools.processes import ManagedProcess, celery_argv, wait_until

FIXED_RATE = 1000  # events (= requests) per second offered by rows 1a and 2
FIXED_CLIENTS = 10
FLAT_OUT_CLIENTS = 64
BATCH_EVENTS = 100
IMPORT_BATCH_EVENTS = 500
WIDE_SITES = 20
WIDE_DAYS = 30
SAMPLE_SECONDS = 0.5
STATS_POLL_SECONDS = 0.1
# While Redis says events are still on their way, ask `/stats` only this often: each poll of
# many sites costs the MongoDB server CPU that the worker needs to finish.
BUSY_STATS_POLL_SECONDS = 2.0
STATS_THREADS = 4
WORKER_STARTUP_SECONDS = 180
HTTP_TIMEOUT = 60
# Longer than the reporting service's own MongoDB timeouts, so it answers 503 first.
STATS_TIMEOUT = 30
SEND_ATTEMPTS = 4  # an import batch answered 503 is sent again, as a client would
WARM_UP_REQUESTS = 25  # per client
GROUPS = ("ingestion", "worker", "redis", "mongo")
# The issue's targets.
SERVED_SHARE = 0.98
P99_VS_BARE = 2.0
FIXED_RATE_DRAIN_SECONDS = 2.0
FLAT_OUT_VS_BARE = 0.5
BATCH_END_TO_END = 20_000
WIDE_VS_NARROW = 0.5
SOAK_RATE_DRIFT = 0.2
WAL_GROWTH = 0.2
WIDE_SEED, NARROW_SEED = 5, 6


@dataclass(frozen=True)
class Sample:
    """The queue and the rollup backlog, `at` seconds after the load started."""

    at: float
    depth: int
    backlog: int


@dataclass(frozen=True)
class QueueSummary:
    max_depth: int
    end_depth: int
    max_backlog: int
    end_backlog: int


def summarise_samples(samples: Sequence[Sample], load_seconds: float) -> QueueSummary:
    """The largest queue and backlog over load and drain, and the last values seen by the
    load's end (the first sample if none came before it)."""
    if not samples:
        return QueueSummary(0, 0, 0, 0)
    by_end = [sample for sample in samples if sample.at <= load_seconds] or [samples[0]]
    return QueueSummary(
        max_depth=max(sample.depth for sample in samples),
        end_depth=by_end[-1].depth,
        max_backlog=max(sample.backlog for sample in samples),
        end_backlog=by_end[-1].backlog,
    )


def thin(samples: Sequence[Sample], points: int = 12) -> list[Sample]:
    """At most `points` samples evenly spread over `samples`, the last one included."""
    if len(samples) <= points:
        return list(samples)
    step = (len(samples) - 1) / (points - 1)
    return [samples[round(index * step)] for index in range(points)]


@dataclass(frozen=True)
class Drain:
    """How the row's events reached `/stats` after the load ended."""

    seconds: float | None  # None: not within the deadline
    counted: int  # the events `/stats` counted last
    accepted: int  # the events ingestion accepted, read just before that answer
    failed_polls: int = 0  # polls in which a site's `/stats` gave no answer
    last_failure: str = ""

    @property
    def complete(self) -> bool:
        return self.seconds is not None and self.counted == self.accepted


def end_to_end_rate(events: int, load_seconds: float, drain_seconds: float | None) -> float:
    """Events per second from the load's start until `/stats` counted them all; NaN if it never did."""
    if drain_seconds is None or load_seconds + drain_seconds <= 0:
        return float("nan")
    return events / (load_seconds + drain_seconds)


@dataclass(frozen=True)
class RowResult:
    label: str
    load: Load
    cpu_seconds: dict[str, float]  # by process group, over load and drain
    queue: QueueSummary | None = None  # None: a reference row, nothing queued
    drain: Drain | None = None
    samples: list[Sample] = field(default_factory=list)

    @property
    def end_to_end(self) -> float:
        if self.drain is None:
            return float("nan")
        return end_to_end_rate(self.drain.accepted, self.load.seconds, self.drain.seconds)

    def cpu_ms_per_thousand(self, group: str) -> float:
        events = self.drain.accepted if self.drain else self.load.accepted
        return cpu_ms_per_thousand(self.cpu_seconds.get(group, float("nan")), events)


def cpu_ms_per_thousand(cpu_seconds: float, events: int) -> float:
    return cpu_seconds * 1_000_000 / events if events else float("nan")


# -- verdicts -------------------------------------------------------------------------------


def fixed_rate_verdicts(row: RowResult, bare: RowResult) -> list[Verdict]:
    """Single events at the fixed rate: served as offered, p99 near the bare endpoint's at the
    same rate, and counted by `/stats` moments after the load."""
    load = row.load
    drained_in = row.drain.seconds if row.drain is not None and row.drain.complete else None
    return [
        Verdict(
            f"row 2 served >= {SERVED_SHARE:g} x offered",
            f"{load.served:,.0f} of {load.offered:,.0f} events/s ({load.served / load.offered:.3f})",
            load.served >= SERVED_SHARE * load.offered,
        ),
        Verdict(
            f"row 2 p99 <= {P99_VS_BARE:g} x row 1a's p99",
            f"{load.p99 * 1000:.1f} ms vs {bare.load.p99 * 1000:.1f} ms ({load.p99 / bare.load.p99:.2f}x)",
            load.p99 <= P99_VS_BARE * bare.load.p99,
        ),
        Verdict(
            f"row 2 complete in /stats within {FIXED_RATE_DRAIN_SECONDS:g} s of the load's end",
            "never" if drained_in is None else f"{drained_in:.2f} s",
            drained_in is not None and drained_in <= FIXED_RATE_DRAIN_SECONDS,
        ),
    ]


def flat_out_verdict(row: RowResult, bare: RowResult) -> Verdict:
    """Single events flat out: the pipeline keeps up with half of what a bare endpoint serves."""
    end_to_end = row.end_to_end
    return Verdict(
        f"row 3 end-to-end >= {FLAT_OUT_VS_BARE:g} x row 1b's requests/s",
        f"{end_to_end:,.0f} vs {bare.load.served:,.0f} ({end_to_end / bare.load.served:.2f}x)",
        end_to_end >= FLAT_OUT_VS_BARE * bare.load.served,
    )


def batch_verdict(row: RowResult) -> Verdict:
    """Batches: a high end-to-end rate, with the queue drained again (bounded) after the load."""
    end_to_end = row.end_to_end
    max_depth = row.queue.max_depth if row.queue else 0
    drained = row.drain is not None and row.drain.complete
    return Verdict(
        f"row 4 end-to-end >= {BATCH_END_TO_END:,} events/s, queue drained",
        f"{end_to_end:,.0f} events/s, max queue {max_depth:,} messages, "
        f"{'drained' if drained else 'not drained'}",
        drained and end_to_end >= BATCH_END_TO_END,
    )


def wide_import_verdict(wide: RowResult, narrow: RowResult) -> Verdict:
    """A wide import (many sites and days) drains, exactly, at half a narrow one's rate or more."""
    drained = wide.drain is not None and wide.drain.complete
    exact = drained and wide.drain is not None and wide.drain.counted == wide.load.sent
    ratio = wide.end_to_end / narrow.end_to_end
    return Verdict(
        f"row 5 drains, exact in /stats, end-to-end >= {WIDE_VS_NARROW:g} x row 6's",
        f"{'drained' if drained else 'not drained'}, {'exact' if exact else 'not exact'}, "
        f"{figure(wide.end_to_end)} vs {figure(narrow.end_to_end)} events/s ({figure(ratio, '.2f')}x)",
        exact and ratio >= WIDE_VS_NARROW,
    )


@dataclass(frozen=True)
class Minute:
    """One minute of the soak: its end-to-end rate and the MongoDB files at its end."""

    rate: float  # events persisted per second over the minute
    data_bytes: int  # every file of the data directory, SQLite's -wal and -shm included
    wal_bytes: int  # the -wal files alone
    max_depth: int


def soak_rate_verdict(rates: Sequence[float]) -> Verdict:
    """The last minute's end-to-end rate is within SOAK_RATE_DRIFT of the first's."""
    target = f"soak: last minute's end-to-end rate within {SOAK_RATE_DRIFT:.0%} of the first's"
    if len(rates) < 2:
        return Verdict(target, "needs at least 2 minutes", False)
    first, last = rates[0], rates[-1]
    drift = abs(last - first) / first if first else float("inf")
    return Verdict(target, f"{first:,.0f} -> {last:,.0f} events/s ({drift:.1%})", drift <= SOAK_RATE_DRIFT)


def files_bounded_verdict(wal_sizes: Sequence[int]) -> Verdict:
    """SQLite's write-ahead log keeps its high-water size between checkpoints, so a steady load
    gives a steady size: bounded if the last minute's is at most WAL_GROWTH above the largest
    of the earlier minutes."""
    target = f"soak: WAL bounded (last minute <= {1 + WAL_GROWTH:g} x the earlier minutes' max)"
    if len(wal_sizes) < 2:
        return Verdict(target, "needs at least 2 minutes", False)
    earlier, last = max(wal_sizes[:-1]), wal_sizes[-1]
    return Verdict(target, f"{mib(last)} vs {mib(earlier)}", last <= (1 + WAL_GROWTH) * earlier)


def mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


# -- events ---------------------------------------------------------------------------------


def import_batches(
    total: int,
    sites: Sequence[str],
    first: datetime,
    last: datetime,
    seed: int,
    batch_size: int = IMPORT_BATCH_EVENTS,
) -> list[list[dict[str, Any]]]:
    """`total` events in batches of `batch_size`, site after site in turn, each timestamp drawn
    evenly from first..last. Each event carries an `event_id`, so a batch sent again after a
    503 counts once."""
    rng = random.Random(seed)
    span = (last - first).total_seconds()
    events = [
        make_event(
            site_id=sites[index % len(sites)],
            path=f"/page-{rng.randrange(50)}",
            user_id=f"user-{rng.randrange(1000)}",
            timestamp=(first + timedelta(seconds=rng.random() * span)).isoformat(),
            event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        )
        for index in range(total)
    ]
    return [events[start : start + batch_size] for start in range(0, total, batch_size)]


@dataclass(frozen=True)
class Sites:
    """A row's site ids and the UTC days its events fall on: what `/stats` is asked."""

    ids: list[str]
    first_day: date
    last_day: date

    def params(self, site_id: str) -> dict[str, str]:
        if self.first_day == self.last_day:
            return {"site_id": site_id, "date": self.first_day.isoformat()}
        return {"site_id": site_id, "start": self.first_day.isoformat(), "end": self.last_day.isoformat()}


# -- the running pipeline -------------------------------------------------------------------


@dataclass
class Pipeline:
    """The running processes: URLs, the broker client, and each group's root pid."""

    env: dict[str, str]
    run_dir: Path
    mongo_dir: Path
    client: redis.Redis
    ingestion_url: str
    reporting_url: str
    pids: dict[str, int]


@contextmanager
def running_pipeline(root: Path, prefill: int, settings: dict[str, str]) -> Iterator[Pipeline]:
    """Redis and the MongoDB server, pre-filled; then the worker, ingestion and reporting,
    with `settings` added to their environment. All stop on leaving, also after an error or
    Ctrl-C."""
    with ExitStack() as stack:
        env, mongod = stack.enter_context(servers(root))
        env = {**env, **settings}
        if prefill:
            prefill_store(env, prefill)
        worker = ManagedProcess("worker", celery_argv("worker"), env, root).start()
        stack.callback(worker.stop)
        wait_until(lambda: " ready." in worker.log(), WORKER_STARTUP_SECONDS, "the worker to be ready")
        ingestion_url, ingestion_pid = stack.enter_context(gunicorn("wsgi:ingestion", env, root, []))
        reporting_url, _ = stack.enter_context(gunicorn("wsgi:reporting", env, root, []))
        client = redis.Redis.from_url(env["REDIS_URL"])
        stack.callback(client.close)
        pids = {
            "ingestion": ingestion_pid,
            "worker": pid_of(worker),
            "redis": int(client.info("server")["process_id"]),
            "mongo": pid_of(mongod),
        }
        yield Pipeline(env, root, root / "mongo", client, ingestion_url, reporting_url, pids)


def prefill_store(env: dict[str, str], events: int) -> None:
    """Fill the store as bench/reporting.py does (100 sites, the 30 days before today)."""
    print(f"pre-filling {events:,} events with bench/reporting.py's bulk loader", flush=True)
    loaded = load(env, Traffic(events), "bulk")
    print(
        f"pre-filled in {loaded.seconds:.0f} s: {loaded.stored_events:,} events, {loaded.rollups:,} rollups",
        flush=True,
    )


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    return {group: process_tree_cpu(pid) for group, pid in pids.items()}


def cpu_since(before: dict[str, float], pids: dict[str, int]) -> dict[str, float]:
    after = cpu_snapshot(pids)
    return {group: after[group] - before[group] for group in before}


def sample(client: redis.Redis, started: float) -> Sample:
    return Sample(time.monotonic() - started, snapshot.snapshot(client).depth, compactor.backlog(client))


class Sampler:
    """Samples the queue and the backlog every SAMPLE_SECONDS in a thread, for at most
    `max_seconds`."""

    def __init__(self, client: redis.Redis, max_seconds: float) -> None:
        self.client = client
        self.max_samples = int(max_seconds / SAMPLE_SECONDS) + 1
        self.started = time.monotonic()
        self.samples: list[Sample] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self.started = time.monotonic()
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)

    def run(self) -> None:
        while not self.stopping.is_set() and len(self.samples) < self.max_samples:
            self.samples.append(sample(self.client, self.started))
            self.stopping.wait(SAMPLE_SECONDS)

    def now(self) -> None:
        """One sample at once (at the load's end), besides the regular ones."""
        self.samples.append(sample(self.client, self.started))

    def sorted(self) -> list[Sample]:
        return sorted(self.samples, key=lambda found: found.at)


def quiet(client: redis.Redis) -> bool:
    """Nothing queued, held by a worker, or waiting to be added into the rollups."""
    queue = snapshot.snapshot(client)
    return queue.depth == 0 and queue.unacknowledged == 0 and compactor.backlog(client) == 0


def wait_quiet(pipeline: Pipeline, deadline: float) -> None:
    """Let the previous row's stragglers finish, so rows never overlap."""
    try:
        wait_until(lambda: quiet(pipeline.client), deadline, "the pipeline to be quiet", interval=0.1)
    except TimeoutError as error:
        print(f"  warning: {error}; the next row starts anyway", flush=True)


def site_views(pipeline: Pipeline, sites: Sites, site_id: str) -> int | str:
    """`/stats`'s total_views for one of the row's sites, or why it gave none."""
    try:
        response = requests.get(
            pipeline.reporting_url + "/stats", params=sites.params(site_id), timeout=STATS_TIMEOUT
        )
        response.raise_for_status()
    except requests.HTTPError as error:
        return f"{error.response.status_code} after {error.response.elapsed.total_seconds():.1f} s"
    except requests.RequestException as error:
        return f"{type(error).__name__}: {str(error)[:120]}"
    return int(response.json()["total_views"])


def stats_total(pipeline: Pipeline, sites: Sites, pool: ThreadPoolExecutor) -> int | str:
    """`/stats`'s total_views summed over the row's sites and days, or the first failure."""
    answers = list(pool.map(lambda site_id: site_views(pipeline, sites, site_id), sites.ids))
    failures = [answer for answer in answers if isinstance(answer, str)]
    return failures[0] if failures else sum(answer for answer in answers if isinstance(answer, int))


def accepted_since(client: redis.Redis, before: int) -> int:
    return counters.totals(client).accepted - before


def wait_for_stats(
    pipeline: Pipeline, sites: Sites, accepted_before: int, load_end: float, deadline: float
) -> Drain:
    """Poll `/stats` until it counts every accepted event of the row, for at most `deadline` s.

    The row is the only sender, so ingestion's accepted counter moved by the row's events
    alone; it is read again before every answer, for requests still in flight at the load's end.
    """
    counted = accepted = failed = 0
    failure = ""
    last_poll = -math.inf
    with ThreadPoolExecutor(max_workers=STATS_THREADS) as pool:
        while time.monotonic() - load_end < deadline:
            busy = not quiet(pipeline.client)
            if not busy or time.monotonic() - last_poll >= BUSY_STATS_POLL_SECONDS:
                last_poll = time.monotonic()
                accepted = accepted_since(pipeline.client, accepted_before)
                total = stats_total(pipeline, sites, pool)
                if isinstance(total, str):  # an error is a finding, not the end of the row
                    failed, failure = failed + 1, total
                elif total >= accepted:
                    return Drain(time.monotonic() - load_end, total, accepted, failed, failure)
                else:
                    counted = total
            time.sleep(STATS_POLL_SECONDS)
    return Drain(None, counted, accepted, failed, failure)


def run_row(
    pipeline: Pipeline, label: str, sites: Sites, send: Callable[[], Load], args: argparse.Namespace
) -> RowResult:
    """One pipeline row: the load, then the drain until `/stats` is complete, with the queue
    sampled and each process group's CPU time counted over both."""
    wait_quiet(pipeline, args.drain_seconds)
    print(f"row {label} ...", flush=True)
    accepted_before = counters.totals(pipeline.client).accepted
    cpu_before = cpu_snapshot(pipeline.pids)
    with Sampler(pipeline.client, args.seconds * 4 + args.drain_seconds + 600) as sampler:
        sent = send()
        load_end = time.monotonic()
        sampler.now()
        drain = wait_for_stats(pipeline, sites, accepted_before, load_end, args.drain_seconds)
    cpu = cpu_since(cpu_before, pipeline.pids)
    accepted = drain.accepted
    load_result = dataclasses.replace(sent, accepted=accepted)
    samples = sampler.sorted()
    return RowResult(label, load_result, cpu, summarise_samples(samples, sent.seconds), drain, samples)


# -- loads ----------------------------------------------------------------------------------


def hey_argv(url: str, body_file: Path, clients: int, seconds: float, per_client_rate: int) -> list[str]:
    """hey posting `body_file` for `seconds` from `clients` clients, each at `per_client_rate`
    requests/s (0: flat out)."""
    rate = ["-q", str(per_client_rate)] if per_client_rate else []
    load = ["-z", f"{seconds:g}s", "-c", str(clients), *rate]
    return ["hey", *load, "-m", "POST", "-T", "application/json", "-D", str(body_file), url]


def hey(url: str, body_file: Path, clients: int, seconds: float, per_client_rate: int = 0) -> Load:
    """One hey run (see `hey_argv`) and what it measured."""
    argv = hey_argv(url, body_file, clients, seconds, per_client_rate)
    started = time.monotonic()
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 120).stdout
    return hey_load(output, body_events(body_file), clients * per_client_rate, time.monotonic() - started)


def hey_load(output: str, events_per_request: int, asked_rate: int, seconds: float) -> Load:
    """Offered is the asked rate (requests/s), or flat out hey's requests/s; accepted, the 200s."""
    result, statuses = parse_hey(output), hey_statuses(output)
    offered = asked_rate or result.requests_per_second
    return Load(
        offered=offered * events_per_request,
        sent=sum(statuses.values()) * events_per_request,
        accepted=statuses.get(200, 0) * events_per_request,
        seconds=seconds,
        p50=result.p50,
        p99=result.p99,
        failures=result.failures,
    )


def body_events(body_file: Path) -> int:
    body = json.loads(body_file.read_bytes())
    return len(body) if isinstance(body, list) else len(body.get("events", [body]))


def write_body(run_dir: Path, name: str, body: object) -> Path:
    path = run_dir / f"{name}.json"
    path.write_text(json.dumps(body))
    return path


def single_event_body(site_id: str, now: datetime) -> dict[str, Any]:
    """No event_id: ingestion gives each request's event its own."""
    return make_event(site_id=site_id, timestamp=now.isoformat())


def batch_body(site_id: str, now: datetime, size: int) -> list[dict[str, Any]]:
    return [
        make_event(site_id=site_id, path=f"/page-{n}", user_id=f"user-{n}", timestamp=now.isoformat())
        for n in range(size)
    ]


def warm_up(url: str, body_file: Path, clients: int) -> None:
    """Every gunicorn worker imports its app and opens its connections before the timed load."""
    argv = ["hey", "-n", str(clients * WARM_UP_REQUESTS), "-c", str(clients), "-m", "POST"]
    argv += ["-T", "application/json", "-D", str(body_file), url]
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300).stdout
    if failures := parse_hey(output).failures:
        raise RuntimeError(f"{failures} failed warm-up requests to {url}")


@dataclass
class Sent:
    """What the Python senders got back."""

    latencies: list[float] = field(default_factory=list)
    accepted: int = 0
    failures: int = 0


def send_batches(url: str, batches: Sequence[list[dict[str, Any]]], senders: int) -> Load:
    """POST every batch once from `senders` threads, each with its own keep-alive session;
    a 503 or a lost connection is retried up to SEND_ATTEMPTS times."""
    bodies = [json.dumps({"events": batch}).encode() for batch in batches]
    local = threading.local()
    sent = Sent()
    lock = threading.Lock()

    def post(body: bytes) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        for attempt in range(SEND_ATTEMPTS):
            started = time.perf_counter()
            try:
                response = local.session.post(
                    url, data=body, headers={"Content-Type": "application/json"}, timeout=HTTP_TIMEOUT
                )
            except requests.ConnectionError:
                response = None
            with lock:
                sent.latencies.append(time.perf_counter() - started)
                if response is not None and response.status_code == 200:
                    sent.accepted += int(response.json()["accepted"])
                    return
                sent.failures += 1
            time.sleep(0.2 * (attempt + 1))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=senders) as pool:
        list(pool.map(post, bodies))
    seconds = time.monotonic() - started
    events = sum(len(batch) for batch in batches)
    return Load(
        offered=events / seconds,
        sent=events,
        accepted=sent.accepted,
        seconds=seconds,
        p50=percentile(sent.latencies, 50),
        p99=percentile(sent.latencies, 99),
        failures=sent.failures,
    )


# -- the rows -------------------------------------------------------------------------------


def reference_rows(pipeline: Pipeline, args: argparse.Namespace) -> tuple[list[RowResult], list[RowResult]]:
    """The bare endpoint under the same gunicorn config: the closed-loop rows (at the fixed
    rate and flat out), and the open-loop rows (one a rate)."""
    body = write_body(pipeline.run_dir, "bare", single_event_body("bare", datetime.now(UTC)))
    with gunicorn("bench.bare_app:app", pipeline.env, pipeline.run_dir, []) as (base, pid):
        url = base + "/event"
        warm_up(url, body, FLAT_OUT_CLIENTS)
        pids = {"ingestion": pid}  # the other processes have nothing to do here

        def measured(label: str, send: Callable[[], Load]) -> RowResult:
            print(f"row {label} ...", flush=True)
            before = cpu_snapshot(pids)
            sent = send()
            return RowResult(label, sent, cpu_since(before, pids))

        closed = [
            measured(label, partial(hey, url, body, clients, args.seconds, rate))
            for label, clients, rate in (
                ("1a bare, 1,000/s", FIXED_CLIENTS, FIXED_RATE // FIXED_CLIENTS),
                ("1b bare, flat out", FLAT_OUT_CLIENTS, 0),
            )
            if args.rows != "open"
        ]
        opened = [
            measured(
                f"bare {rate:,}/s", partial(open_loop, url, body, rate, args.open_seconds, pipeline.run_dir)
            )
            for rate in args.open_rates
            if args.rows != "closed"
        ]
    return closed, opened


def open_loop_rows(pipeline: Pipeline, args: argparse.Namespace) -> list[RowResult]:
    """`POST /event` at each open-loop rate, a site of its own a row."""
    rows = []
    for rate in args.open_rates:
        sites = today_sites()
        body = write_body(
            pipeline.run_dir, f"open-{rate}", single_event_body(sites.ids[0], datetime.now(UTC))
        )
        send = partial(
            open_loop, pipeline.ingestion_url + "/event", body, rate, args.open_seconds, pipeline.run_dir
        )
        rows.append(run_row(pipeline, f"event {rate:,}/s", sites, send, args))
    return rows


def today_sites(count: int = 1) -> Sites:
    today = datetime.now(UTC).date()
    return Sites([new_site_id() for _ in range(count)], today, today)


def hey_row(
    pipeline: Pipeline,
    args: argparse.Namespace,
    label: str,
    body: Callable[[str], object],
    clients: int,
    rate: int = 0,
) -> RowResult:
    """A row sent by hey: a site of its own, today, the same body every request (ingestion
    gives each event its own id). A list body goes to `POST /events`."""
    sites = today_sites()
    site_body = body(sites.ids[0])
    body_file = write_body(pipeline.run_dir, f"row-{label.split()[0]}", site_body)
    url = pipeline.ingestion_url + ("/events" if isinstance(site_body, list) else "/event")
    return run_row(pipeline, label, sites, lambda: hey(url, body_file, clients, args.seconds, rate), args)


def import_row(pipeline: Pipeline, args: argparse.Namespace, label: str, wide: bool) -> RowResult:
    """An import from Python senders: wide (WIDE_SITES sites over WIDE_DAYS days) or narrow
    (one site, today so far). The events are made before the clock starts."""
    now = datetime.now(UTC)
    if wide:
        first = now - timedelta(days=WIDE_DAYS - 1)
        sites = Sites([new_site_id() for _ in range(WIDE_SITES)], first.date(), now.date())
    else:
        first = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
        sites = Sites([new_site_id()], now.date(), now.date())
    seed = WIDE_SEED if wide else NARROW_SEED
    batches = import_batches(args.import_events, sites.ids, first, now, seed)
    url = pipeline.ingestion_url + "/events"
    return run_row(pipeline, label, sites, lambda: send_batches(url, batches, args.senders), args)


def warm_up_pipeline(pipeline: Pipeline, args: argparse.Namespace) -> None:
    """Warm ingestion's workers and let their events through, before any timed row."""
    now = datetime.now(UTC)
    body = write_body(pipeline.run_dir, "warm-up", single_event_body(new_site_id(), now))
    warm_up(pipeline.ingestion_url + "/event", body, FLAT_OUT_CLIENTS)
    wait_quiet(pipeline, args.drain_seconds)


def run_rows(pipeline: Pipeline, args: argparse.Namespace) -> tuple[list[RowResult], list[RowResult]]:
    """The closed-loop rows, and the open-loop rows (bare and `POST /event`, rate by rate)."""
    bare_closed, bare_open = reference_rows(pipeline, args)
    warm_up_pipeline(pipeline, args)
    opened = open_loop_rows(pipeline, args) if args.rows != "closed" else []
    open_rows = [row for pair in zip(bare_open, opened, strict=True) for row in pair]
    if args.rows == "open":
        return [], open_rows
    now = datetime.now(UTC)

    def single(site_id: str) -> object:
        return single_event_body(site_id, now)

    def batch(site_id: str) -> object:
        return batch_body(site_id, now, BATCH_EVENTS)

    per_client = FIXED_RATE // FIXED_CLIENTS
    rows = [
        *bare_closed,
        hey_row(pipeline, args, "2 event, 1,000/s", single, FIXED_CLIENTS, per_client),
        hey_row(pipeline, args, "3 event, flat out", single, FLAT_OUT_CLIENTS),
        hey_row(pipeline, args, f"4 batch {BATCH_EVENTS}, flat out", batch, args.batch_clients),
    ]
    if args.import_events:
        # The narrow import first: after a round the compactor rests in proportion to the
        # round's length, and the wide import's long last round would delay the narrow one.
        narrow = import_row(pipeline, args, "6 narrow import", wide=False)
        rows += [import_row(pipeline, args, "5 wide import", wide=True), narrow]
    return rows, open_rows


# -- output ---------------------------------------------------------------------------------


def figure(value: float, spec: str = ",.0f") -> str:
    return "-" if math.isnan(value) else format(value, spec)


def drain_text(drain: Drain | None, deadline: float) -> str:
    if drain is None:
        return "-"
    if drain.seconds is None:
        return f">{deadline:g}"
    return f"{drain.seconds:.2f}"


def print_table(rows: Sequence[RowResult], deadline: float) -> None:
    header = (
        f"{'row':<22}{'offered':>9}{'served':>9}{'p50':>7}{'p99':>8}{'fail':>6}"
        f"{'queue':>12}{'backlog':>10}{'drain s':>9}{'e2e':>9}"
        f"{'ingest':>8}{'worker':>8}{'redis':>7}{'mongo':>7}"
    )
    print(f"\n{'':22}{'events/s':>18}{'ms':>15}{'':6}{'max/end':>22}{'':18}{'CPU ms per 1,000 events':>30}")
    print(header)
    for row in rows:
        queue = f"{row.queue.max_depth}/{row.queue.end_depth}" if row.queue else "-"
        backlog = f"{row.queue.max_backlog}/{row.queue.end_backlog}" if row.queue else "-"
        cpu = "".join(
            f"{figure(row.cpu_ms_per_thousand(group), '.0f'):>{width}}"
            for group, width in zip(GROUPS, (8, 8, 7, 7), strict=True)
        )
        print(
            f"{row.label:<22}{figure(row.load.offered):>9}{figure(row.load.served):>9}"
            f"{figure(row.load.p50 * 1000, '.1f'):>7}{figure(row.load.p99 * 1000, '.1f'):>8}"
            f"{row.load.failures:>6}{queue:>12}{backlog:>10}{drain_text(row.drain, deadline):>9}"
            f"{figure(row.end_to_end):>9}{cpu}"
        )
    print(
        "offered: events/s sent (rows 1a, 2: the rate asked of hey); served: accepted events/s during"
        "\nthe load; queue: queued messages and backlog: batches not yet in the rollups, max over load"
        "\nand drain / at the load's end; drain: seconds from the load's end until /stats counted every"
        "\naccepted event; e2e: accepted / (load + drain seconds); CPU per 1,000 accepted events over"
        "\nload and drain (rows 1a, 1b: the bare gunicorn in the ingestion column). hey waits for each"
        "\nanswer: at 100/s a client whose requests take over 10 ms sends fewer than offered"
    )


def print_details(rows: Sequence[RowResult], deadline: float) -> None:
    """What the table cannot hold: counts, exactness, and the queue over time."""
    print()
    for row in rows:
        if row.drain is None:
            continue
        drain = row.drain
        state = (
            f"counted {drain.counted:,} of {drain.accepted:,} accepted in {drain.seconds:.2f} s"
            if drain.seconds is not None
            else f"not within {deadline:g} s: /stats counted {drain.counted:,} of {drain.accepted:,}"
        )
        print(f"{row.label}: {row.load.sent:,} events sent, {state}")
        if drain.failed_polls:
            print(f"  /stats gave no answer in {drain.failed_polls} polls; the last: {drain.last_failure}")
        series = " ".join(f"{found.at:.1f}s:{found.depth}/{found.backlog}" for found in thin(row.samples))
        print(f"  queue/backlog over time: {series}")


def print_ratios(rows: Sequence[RowResult]) -> None:
    """Each pipeline row against the reference with the same clients."""
    bare_fixed, bare_flat, *pipeline_rows = rows
    print("\nagainst the reference (served events/s / bare requests/s; p99 / bare p99 at the same load):")
    for row in pipeline_rows:
        bare = bare_fixed if row.label.startswith("2 ") else bare_flat
        same_load = row.label.startswith(("2 ", "3 "))
        p99 = f"   p99 {row.load.p99 / bare.load.p99:6.2f}x" if same_load else ""
        print(f"  {row.label:<22} vs {bare.label:<18} served {row.load.served / bare.load.served:6.2f}x{p99}")


def print_verdicts(rows: Sequence[RowResult]) -> None:
    by_number = {row.label.split()[0]: row for row in rows}
    verdicts = fixed_rate_verdicts(by_number["2"], by_number["1a"])
    verdicts.append(flat_out_verdict(by_number["3"], by_number["1b"]))
    verdicts.append(batch_verdict(by_number["4"]))
    if "5" in by_number:
        verdicts.append(wide_import_verdict(by_number["5"], by_number["6"]))
    print("\ntargets:")
    for verdict in verdicts:
        print(f"  {verdict}")


def print_open(rows: Sequence[RowResult]) -> None:
    """The open-loop table, each row's latency against bare's at its rate, and the targets."""
    print_open_table(rows)
    pairs = {int(bare.load.offered): (bare, row) for bare, row in zip(rows[::2], rows[1::2], strict=True)}
    print("\nagainst bare at the same rate (p50 / p99 ratios):")
    for rate, (bare, row) in pairs.items():
        p50, p99 = row.load.p50 / bare.load.p50, row.load.p99 / bare.load.p99
        print(f"  {rate:>6,}/s  p50 {p50:6.2f}x   p99 {p99:6.2f}x")
    print("\nopen-loop targets:")
    for verdict in open_loop_verdicts(pairs):
        print(f"  {verdict}")


def print_header() -> None:
    """The machine and the configuration the figures belong to."""
    settings = Settings.from_env(dict(os.environ))
    load_average = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average {load_average}; MongoDB server: {mongo_argv(0, Path())[0]}")
    print(
        f"gunicorn (ingestion, reporting, bare): {gunicorn_summary([])} (gunicorn.conf.py's default, "
        f"as the Procfile runs it); celery worker: {settings.worker_concurrency} processes; "
        f"Redis fsync always",
        flush=True,
    )


# -- soak -----------------------------------------------------------------------------------


def data_sizes(directory: Path) -> tuple[int, int]:
    """Bytes of every file under `directory`, and of SQLite's write-ahead logs (-wal) alone."""
    files = [path for path in directory.rglob("*") if path.is_file()]
    return sum(path.stat().st_size for path in files), sum(
        path.stat().st_size for path in files if path.name.endswith("-wal")
    )


def soak(pipeline: Pipeline, args: argparse.Namespace) -> None:
    """Single events at the soak rate for M minutes; each minute's end-to-end rate and files."""
    warm_up_pipeline(pipeline, args)
    sites = today_sites()
    body = write_body(pipeline.run_dir, "soak", single_event_body(sites.ids[0], datetime.now(UTC)))
    per_client = args.soak_rate // FIXED_CLIENTS
    seconds = args.soak_minutes * 60
    print(
        f"soak: {args.soak_minutes} minutes of POST /event at {per_client * FIXED_CLIENTS:,}/s "
        f"({FIXED_CLIENTS} clients x {per_client}/s)",
        flush=True,
    )
    before = counters.totals(pipeline.client)
    argv = hey_argv(pipeline.ingestion_url + "/event", body, FIXED_CLIENTS, seconds, per_client)
    with Sampler(pipeline.client, seconds + args.drain_seconds + 600) as sampler:
        started = time.monotonic()
        running = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            minutes = soak_minutes(pipeline, sampler, running, started, before.persisted, args.soak_minutes)
            output, _ = running.communicate(timeout=seconds + 120)
        finally:
            if running.poll() is None:
                running.kill()
                running.wait()
        load_result = hey_load(output, 1, per_client * FIXED_CLIENTS, time.monotonic() - started)
        drain = wait_for_stats(pipeline, sites, before.accepted, time.monotonic(), args.drain_seconds)
    print_soak(load_result, drain, minutes, args.drain_seconds)


def soak_minutes(
    pipeline: Pipeline,
    sampler: Sampler,
    running: subprocess.Popen[str],
    started: float,
    persisted: int,
    count: int,
) -> list[Minute]:
    """At the end of each minute while hey runs: the events persisted in it, and the files."""
    minutes: list[Minute] = []
    for number in range(1, count + 1):
        until = started + 60 * number
        while time.monotonic() < until and running.poll() is None:
            time.sleep(min(0.5, max(0.0, until - time.monotonic())))
        now_persisted = counters.totals(pipeline.client).persisted
        total, wal = data_sizes(pipeline.mongo_dir)
        since = started + 60 * (number - 1) - sampler.started
        depth = max((found.depth for found in sampler.sorted() if found.at >= since), default=0)
        minutes.append(Minute((now_persisted - persisted) / 60, total, wal, depth))
        persisted = now_persisted
        print_minute(number, minutes[-1])
    return minutes


def print_minute(number: int, minute: Minute) -> None:
    print(
        f"  minute {number:>3}: {minute.rate:8,.0f} events/s end to end, max queue {minute.max_depth:>5}, "
        f"data dir {mib(minute.data_bytes)} (WAL {mib(minute.wal_bytes)})",
        flush=True,
    )


def print_soak(load_result: Load, drain: Drain, minutes: Sequence[Minute], deadline: float) -> None:
    served = drain.accepted / load_result.seconds
    when = (
        f"{drain.seconds:.2f} s after the load" if drain.seconds is not None else f"not within {deadline:g} s"
    )
    print(
        f"soak load: offered {load_result.offered:,.0f}/s, served {served:,.0f} events/s, "
        f"p50 {load_result.p50 * 1000:.1f} ms, p99 {load_result.p99 * 1000:.1f} ms, "
        f"{load_result.failures} failed; /stats complete: {when}, "
        f"counted {drain.counted:,} of {drain.accepted:,} accepted"
    )
    if drain.failed_polls:
        print(f"/stats gave no answer in {drain.failed_polls} polls; the last: {drain.last_failure}")
    print(
        "end to end: events the worker persisted in the minute (app.queue.counters) / 60 s; "
        "data dir: every file of the MongoDB data directory, SQLite's -wal and -shm included"
    )
    print(f"  {soak_rate_verdict([minute.rate for minute in minutes])}")
    print(f"  {files_bounded_verdict([minute.wal_bytes for minute in minutes])}")
    print(
        "  (SQLite's WAL keeps its high-water size between checkpoints: a steady load holds it "
        "steady, a growing one means checkpoints fall behind)"
    )


# -- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--prefill", type=int, default=100_000, help="events in the store before the rows (default 100,000)"
    )
    parser.add_argument("--seconds", type=float, default=30, help="length of each hey row (default 30)")
    parser.add_argument(
        "--import-events",
        type=int,
        default=300_000,
        help="events of each import row (default 300,000); 0 skips them",
    )
    parser.add_argument("--senders", type=int, default=4, help="Python threads sending an import (default 4)")
    parser.add_argument(
        "--batch-clients", type=int, default=16, help="hey clients of the batch row (default 16)"
    )
    parser.add_argument(
        "--drain-seconds", type=float, default=600, help="longest wait for /stats after a load (default 600)"
    )
    parser.add_argument(
        "--open-seconds", type=float, default=15, help="length of each open-loop row (default 15)"
    )
    parser.add_argument(
        "--open-rates",
        type=int,
        nargs="+",
        default=list(OPEN_RATES),
        help="the open-loop rows' rates, events/s (default 50 500 1000)",
    )
    parser.add_argument(
        "--rows",
        choices=("all", "open", "closed"),
        default="all",
        help="the open-loop rows (vegeta), the closed-loop ones (hey), or both (default)",
    )
    parser.add_argument(
        "--set",
        type=setting_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every service, e.g. GROUP_COMMIT_LINGER_MS=0 (repeatable)",
    )
    parser.add_argument("--soak-minutes", type=int, default=0, help="run the soak instead, for M minutes")
    parser.add_argument("--soak-rate", type=int, default=FIXED_RATE, help="events/s offered in the soak")
    parser.add_argument("--logs", type=Path, help="copy the processes' logs into this directory at the end")
    args = parser.parse_args()
    if (
        args.seconds <= 0
        or args.open_seconds <= 0
        or args.drain_seconds <= 0
        or args.senders < 1
        or args.batch_clients < 1
    ):
        parser.error("--seconds, --drain-seconds, --senders and --batch-clients must be positive")
    if min(args.prefill, args.import_events, args.soak_minutes) < 0 or args.soak_rate < FIXED_CLIENTS:
        parser.error(f"counts must not be negative, and --soak-rate at least {FIXED_CLIENTS}")
    return args


def setting_pair(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def keep_logs(run_dir: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    for log in run_dir.glob("*.log"):
        shutil.copy(log, destination / log.name)
    print(f"logs copied to {destination}")


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the same cleanup as Ctrl-C's stops every process."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def main() -> None:
    args = parse_args()
    if shutil.which("hey") is None:
        sys.exit("bench: `hey` is not on PATH; install it (Debian: apt-get install hey) and run again")
    stop_on_sigterm()
    print_header()
    if args.set:
        print("settings: " + " ".join(f"{name}={value}" for name, value in args.set), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        try:
            with running_pipeline(Path(tmp), args.prefill, dict(args.set)) as pipeline:
                if args.soak_minutes:
                    soak(pipeline, args)
                    return
                rows, open_rows = run_rows(pipeline, args)
        finally:
            if args.logs:
                keep_logs(Path(tmp), args.logs)
        if rows:
            print_table(rows, args.drain_seconds)
            print_details(rows, args.drain_seconds)
            print_ratios(rows)
            print_verdicts(rows)
        if open_rows:
            print_open(open_rows)


if __name__ == "__main__":
    main()
