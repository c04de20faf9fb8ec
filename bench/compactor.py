"""The compactor's cost, in process, on fresh local servers (Redis and FerretDB, or MONGO_URI).

    .venv/bin/python -m bench.compactor mixed [--sites 20] [--batches 200] [--size 100]
                                              [--spread SECONDS] [--no-users] [--visits]
    .venv/bin/python -m bench.compactor users [--users 100000]

`mixed`: batches of events of SITES sites spread over three days (or SPREAD seconds: 600 is
live traffic), users repeating (5,000 a site) or none, appended
as workers append them (`compactor.append_batch`), then added up by `compactor.compact`:
what a round of rollups costs (quarter, hour, day and week rollups since issue #26); with
--visits, the batches' rows for the visits appended too, as workers append them by default,
and folded into the visits (issue #28).
`users`: USERS distinct 256-character user ids of one site, 500 to a batch: what numbering
users costs, and what it leaves in Redis once the streams are drained. With --passes 2 the
same events come again as new batches: the users return.

Each prints the wall and CPU seconds of the compaction (this process, the database server's
and Redis's), the rollups written and Redis's `used_memory` before and after. Nothing is
stored but the deltas and what the compactor writes: the events themselves are not.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import redis
from pymongo import MongoClient
from pymongo.database import Database

from app.rollups import compactor
from app.sessions.rows import rows_of
from app.store import rollups as rollup_store
from tools.local_services import mongo_argv, redis_argv
from tools.processes import start_local_server

DAY = datetime(2025, 11, 15, tzinfo=UTC)
USERS_PER_BATCH = 500


def event(site_id: str, moment: datetime, user_id: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "site_id": site_id,
        "event_type": "page_view",
        "path": "/p",
        "user_id": user_id,
        "timestamp": moment,
    }


def mixed_batches(
    sites: int, batches: int, size: int, spread: int, users: bool
) -> list[list[dict[str, Any]]]:
    rng = random.Random(26)
    return [
        [
            event(
                f"site-{rng.randrange(sites)}",
                DAY + timedelta(seconds=rng.randrange(spread)),
                f"user-{rng.randrange(5000)}" if users else "",
            )
            for _ in range(size)
        ]
        for _ in range(batches)
    ]


def distinct_user_batches(users: int) -> list[list[dict[str, Any]]]:
    return [
        [
            event("site-users", DAY + timedelta(seconds=n % 86400), secrets.token_hex(128))
            for n in range(USERS_PER_BATCH)
        ]
        for _ in range(users // USERS_PER_BATCH)
    ]


def ensure_indexes(db: Database[Any]) -> None:
    """The unique index numbering needs, where this release has one (the release before kept
    users' numbers in Redis)."""
    try:
        from app.store import user_numbers
    except ImportError:
        return
    user_numbers.ensure_indexes(db)


def run(batches: list[list[dict[str, Any]]], mongo_uri: str | None, passes: int, visits: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-compactor-") as root:
        redis_server = start_local_server("redis", redis_argv, Path(root))
        mongo_server = None if mongo_uri else start_local_server("mongo", mongo_argv, Path(root))
        try:
            client = redis.Redis(port=redis_server.port)
            uri = mongo_uri or f"mongodb://127.0.0.1:{mongo_server.port}/"  # type: ignore[union-attr]
            mongo: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True)
            db = mongo.get_database(f"bench_compactor_{uuid.uuid4().hex[:8]}")
            ensure_indexes(db)
            process = None if mongo_server is None else mongo_server.process.process
            rounds = timing_rounds()
            for number in range(1, passes + 1):
                print(f"pass {number}:")
                measure(db, client, batches, None if process is None else process.pid, visits, rounds)
        finally:
            redis_server.stop()
            if mongo_server is not None:
                mongo_server.stop()


def measure(
    db: Database[Any],
    client: redis.Redis,
    batches: list[list[dict[str, Any]]],
    server_pid: int | None,
    visits: bool,
    rounds: list[float],
) -> None:
    events = sum(len(batch) for batch in batches)
    before = int(client.info("memory")["used_memory"])
    pipe = client.pipeline(transaction=False)
    for batch in batches:
        # The bench's events have no `_id` and never a previous day's visitor id.
        rows = rows_of(batch, {}) if visits else None
        compactor.append_batch(pipe, uuid.uuid4().hex, batch, rows)
    pipe.execute()
    appended = int(client.info("memory")["used_memory"])
    server = psutil.Process(server_pid) if server_pid else None
    server_cpu = sum(server.cpu_times()[:2]) if server else 0.0
    redis_cpu = redis_cpu_seconds(client)
    rounds.clear()
    started, cpu = time.perf_counter(), time.process_time()
    consumed = 0
    while compactor.backlog(client):
        consumed += compactor.compact(db, client)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    server_cpu = sum(server.cpu_times()[:2]) - server_cpu if server else float("nan")
    redis_cpu = redis_cpu_seconds(client) - redis_cpu
    after = int(client.info("memory")["used_memory"])
    rollups = db[rollup_store.ROLLUPS].estimated_document_count()
    visit_count = db["visits"].estimated_document_count()
    print(f"{events} events in {len(batches)} entries ({consumed} consumed), {rollups} rollups,")
    print(f"  {visit_count} visits")
    per_round = 1000 * wall / max(1, len(rounds))
    print(f"compaction: {wall:.2f} s wall in {len(rounds)} rounds, {per_round:.0f} ms a round")
    print(f"  (each round's ms: {', '.join(f'{1000 * seconds:.0f}' for seconds in rounds)});")
    print(f"  CPU seconds: {cpu:.2f} in process,")
    print(f"  {server_cpu:.2f} of the database server, {redis_cpu:.2f} of Redis")
    mb = 2**20
    print(f"Redis used_memory: {before / mb:.2f} MB before, {appended / mb:.2f} MB appended,")
    print(f"  {after / mb:.2f} MB drained: {(after - before) / mb:.2f} MB more than before,")
    print(f"  {(after - before) / max(1, events):.1f} B an event")


def timing_rounds() -> list[float]:
    """The wall seconds of each round from now on (`compactor._apply` of a whole round, or of
    an entry when a round is isolated); call once a process."""
    seconds: list[float] = []
    apply = compactor._apply

    def timed(*args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            apply(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    compactor._apply = timed
    return seconds


def redis_cpu_seconds(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", choices=["mixed", "users"])
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--spread", type=int, default=3 * 86400, help="seconds the mixed events span")
    parser.add_argument("--no-users", action="store_true", help="mixed events without user ids")
    parser.add_argument("--visits", action="store_true", help="append and fold the rows for the visits")
    parser.add_argument("--passes", type=int, default=1, help="the same events again, as new batches")
    parser.add_argument(
        "--entries-per-round", type=int, default=compactor.ENTRIES_PER_ROUND, help="entries a round takes"
    )
    args = parser.parse_args()
    compactor.ENTRIES_PER_ROUND = args.entries_per_round
    if args.scenario == "mixed":
        batches = mixed_batches(args.sites, args.batches, args.size, args.spread, not args.no_users)
    else:
        batches = distinct_user_batches(args.users)
    run(batches, os.environ.get("MONGO_URI"), args.passes, args.visits)


if __name__ == "__main__":
    main()
