"""A soak: about a minute of mixed good and bad traffic at a fixed rate through the whole
pipeline, then every accepted event stored, `/stats` agreeing with `/stats/aggregated`, no
5xx, and the services' memory flat. The figures are printed at the end of the run."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any

import psutil
import requests
from pymongo.database import Database

from tests.integration.client import TIMEOUT, get_stats, wait_for_views
from tests.integration.soak import DAYS, Mix, Tally, offer
from tools.factories import new_site_id
from tools.processes import ManagedProcess, wait_until

# Requests a second: the services answer it in tens of milliseconds on the two-core machine
# with the whole stack (both services, worker, Redis, FerretDB) and this client on it, so a
# soak, not an overload test; a busy machine's worker may fall behind and catch up after.
RATE = 60
WARMUP_SECONDS = 10
SOAK_SECONDS = 50
MAX_MEMORY_GROWTH = 0.20
SETTLE_SECONDS = 180


def resident_bytes(process: ManagedProcess) -> int:
    """Resident memory of a gunicorn master and its workers."""
    assert process.process is not None
    master = psutil.Process(process.process.pid)
    return sum(member.memory_info().rss for member in [master, *master.children(recursive=True)])


def stored(db: Database[dict[str, Any]], site_id: str, day: str) -> int:
    start = datetime.combine(date.fromisoformat(day), time.min, tzinfo=UTC)
    return db.events.count_documents(
        {"site_id": site_id, "timestamp": {"$gte": start, "$lt": start + timedelta(days=1)}}
    )


def megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def describe(tally: Tally, before: dict[str, int], after: dict[str, int]) -> list[str]:
    """The load's figures: requests, rate, events accepted, answers, latency and memory."""
    sent_rate, statuses = tally.requests / tally.seconds, dict(sorted(tally.statuses.items()))
    return [
        f"soak: {tally.requests} requests in {tally.seconds:.0f} s ({sent_rate:.1f}/s, target {RATE}/s), "
        f"{sum(tally.accepted.values())} events accepted; answers by status {statuses}",
        f"soak latency: ingestion {tally.latency('ingestion')}; reporting {tally.latency('reporting')}",
        "soak memory after warm-up -> end: "
        + ", ".join(f"{name} {megabytes(before[name])} -> {megabytes(after[name])}" for name in before),
    ]


def test_a_minute_of_mixed_traffic_keeps_every_event_and_the_memory_flat(
    pipeline: dict[str, str],
    service_processes: dict[str, ManagedProcess],
    db: Database[dict[str, Any]],
    figures: list[str],
) -> None:
    sites = [new_site_id() for _ in range(3)]
    mix, tally = Mix(sites, seed=17), Tally()
    services = ("ingestion", "reporting")

    offer(mix, pipeline, RATE, WARMUP_SECONDS, tally)
    before = {name: resident_bytes(service_processes[name]) for name in services}
    offer(mix, pipeline, RATE, SOAK_SECONDS, tally)
    after = {name: resident_bytes(service_processes[name]) for name in services}

    figures.extend(describe(tally, before, after))
    assert not tally.wrong, tally.wrong_answers()
    assert not any(status >= 500 or status == 0 for status in tally.statuses), tally.statuses
    for name in services:
        assert after[name] < before[name] * (1 + MAX_MEMORY_GROWTH), (name, before[name], after[name])

    load_ended = monotonic()
    health = requests.get(f"{pipeline['reporting']}/health/pipeline", timeout=TIMEOUT).json()
    figures.append(
        f"soak: at the load's end, queue depth {health['queue']['depth']}, rollup backlog "
        f"{health['rollups']['backlog']}, lag {health['lag_seconds']} s"
    )
    site_days = [(site, day) for site in sites for day in DAYS]
    wait_until(
        lambda: all(stored(db, *site_day) >= tally.accepted[site_day] for site_day in site_days),
        SETTLE_SECONDS,
        "every accepted event stored",
        interval=1,
    )
    assert {site_day: stored(db, *site_day) for site_day in site_days} == {
        site_day: tally.accepted[site_day] for site_day in site_days
    }
    reporting = pipeline["reporting"]
    for site, day in site_days:
        rollups = wait_for_views(reporting, site, day, tally.accepted[site, day], SETTLE_SECONDS)
        assert rollups == get_stats(reporting, site, day, "/stats/aggregated")
    figures.append(f"soak: all stored and in /stats {monotonic() - load_ended:.0f} s after the load")
