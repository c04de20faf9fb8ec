"""Measure ingestion against a bare Flask endpoint with `hey`, on loopback only.

    .venv/bin/python -m bench.ingest [--seconds 10] [--concurrency 8 64] [--rounds 3]
                                     [--ceilings] [--worker-class gthread]

It starts its own Redis (append-only file fsynced always, as in production) and one
gunicorn at a time, each on a free 127.0.0.1 port, under `gunicorn.conf.py`. No Celery
worker runs: queued messages pile up in Redis, which is flushed and stopped at the end.

Each row is measured at every `--concurrency` level (8 and 64 clients by default: a few
busy senders, and the many concurrent requests of high volume, where group commit shares
its enqueues most). It runs every row `--rounds` times in turn (3 by default), each round
with a fresh Redis, and ends with each figure's median: on a shared machine one round can
be far off. Each row also shows gunicorn's CPU time per response, the machine's steal
share meanwhile, and, where the product's enqueue ran, the events each queued message
carried. The issue's targets are printed as met or not after each table. `--ceilings`
adds two rows of `POST /event` with its enqueue swapped out (see bench/ceiling_app.py), and
one without its rate limits, which shows what counting them in Redis costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

from app.queue import counters, snapshot
from bench.worker import pid_of, process_tree_cpu
from tools.factories import FIXED_DATES_ENV, make_event
from tools.local_services import redis_argv
from tools.processes import (
    PYTHON_BIN,
    ROOT,
    UNLIMITED_RATES,
    ManagedProcess,
    free_port,
    port_open,
    wait_until,
)

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30
BATCH_SIZE = 100
FIXED_RATE_EVENTS_PER_SECOND = 1000
FIXED_RATE_CLIENTS = 10
DEFAULT_CONCURRENCY = (8, 64)
# The targets, on this machine.
TARGET_RATIO_TO_BARE = 0.6
TARGET_RATIO_TO_NAIVE = 2.0
TARGET_BATCH_EVENTS_PER_SECOND = 30_000
TARGET_FIXED_RATE_P99 = 0.005


@dataclass(frozen=True)
class Row:
    """One line of the table: a gunicorn app, the path posted to and the body sent."""

    label: str
    target: str
    path: str
    events_per_request: int
    # Also measured at a fixed offered rate, for its latency under a realistic load.
    at_fixed_rate: bool = False
    env: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        events = [
            make_event(site_id="bench", path=f"/page-{index}", user_id=f"user-{index}")
            for index in range(self.events_per_request)
        ]
        return json.dumps(events if self.path == "/events" else events[0]).encode()


ROWS = (
    # The limit's latency at the fixed rate too: the floor under row 3's p99 on this machine.
    Row("bare Flask: parse JSON, echo it", "bench.bare_app:app", "/event", 1, at_fixed_rate=True),
    Row("naive: one apply_async per request", "bench.naive_app:app", "/event", 1),
    Row("POST /event", "wsgi:ingestion", "/event", 1, at_fixed_rate=True),
    Row(f"POST /events, batches of {BATCH_SIZE}", "wsgi:ingestion", "/events", BATCH_SIZE),
)
BARE, NAIVE, EVENT, BATCH = range(4)  # positions in ROWS, which the targets name
CEILING = "bench.ceiling_app:app"
CEILING_ROWS = (
    Row("ceiling: POST /event, no enqueue", CEILING, "/event", 1, env={"BENCH_CEILING": "none"}),
    Row("ceiling: one LPUSH, no Celery", CEILING, "/event", 1, env={"BENCH_CEILING": "lpush"}),
    # What counting the rate limits in Redis costs row 3: the same endpoint without them.
    Row(
        "POST /event, rate limits off",
        "wsgi:ingestion",
        "/event",
        1,
        env={"INGESTION_RATE_LIMIT": "off", "INGESTION_EVENT_RATE_LIMIT": "off", "SITE_RATE_LIMIT": "off"},
    ),
)


@dataclass(frozen=True)
class Result:
    """What one hey run measured (latencies in seconds), and the CPU it took."""

    requests_per_second: float
    p50: float
    p99: float
    failures: int
    # gunicorn's CPU time (master and workers, user and system) per response.
    server_cpu_per_request: float = float("nan")
    # The share of the machine's CPU time the hypervisor gave to other guests meanwhile.
    steal: float = float("nan")
    # Events a queued message carried on average: group commit at work (NaN: no product enqueue).
    events_per_message: float = float("nan")


def median(results: Sequence[Result]) -> Result:
    """Each figure's median over rounds; failures are summed."""
    return Result(
        requests_per_second=statistics.median(result.requests_per_second for result in results),
        p50=statistics.median(result.p50 for result in results),
        p99=statistics.median(result.p99 for result in results),
        failures=sum(result.failures for result in results),
        server_cpu_per_request=statistics.median(result.server_cpu_per_request for result in results),
        steal=statistics.median(result.steal for result in results),
        events_per_message=statistics.median(result.events_per_message for result in results),
    )


@dataclass(frozen=True)
class Round:
    """One pass over the rows: each row's result by concurrency level, and the fixed-rate
    results by label."""

    results: dict[int, list[Result]]
    fixed: dict[str, Result]


def median_round(rounds: Sequence[Round]) -> Round:
    """The rounds' medians, row by row at each level, and fixed-rate result by label."""

    def level_medians(level: int) -> list[Result]:
        return [median(row) for row in zip(*(done.results[level] for done in rounds), strict=True)]

    return Round(
        {level: level_medians(level) for level in rounds[0].results},
        {label: median([done.fixed[label] for done in rounds]) for label in rounds[0].fixed},
    )


@dataclass(frozen=True)
class Tally:
    """What the product's enqueues have left in Redis: queued messages, accepted events."""

    messages: int
    events: int


def tally(client: redis.Redis) -> Tally:
    return Tally(messages=snapshot.snapshot(client).depth, events=counters.totals(client).accepted)


def events_per_message(before: Tally, after: Tally) -> float:
    """Accepted events per queued message between two tallies; NaN if the product's
    enqueue did not run (the counter did not move)."""
    messages, events = after.messages - before.messages, after.events - before.events
    return events / messages if messages > 0 and events > 0 else float("nan")


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool

    def __str__(self) -> str:
        return f"target {self.target}: {self.measured}: {'met' if self.met else 'not met'}"


def ratio_verdict(row: str, rate: float, reference_row: str, reference: float, ratio: float) -> Verdict:
    """`row`'s `rate` is at least `ratio` times `reference_row`'s `reference`."""
    return Verdict(
        f"{row} >= {ratio:g}x {reference_row}", f"{rate / reference:.3f}x", rate >= ratio * reference
    )


def throughput_verdicts(results: Sequence[Result]) -> list[Verdict]:
    """The issue's throughput targets, read off one table's rows."""
    bare, naive, event, batch = (results[row].requests_per_second for row in (BARE, NAIVE, EVENT, BATCH))
    batch_events = batch * ROWS[BATCH].events_per_request
    return [
        ratio_verdict("row 3", event, "row 1", bare, TARGET_RATIO_TO_BARE),
        ratio_verdict("row 3", event, "row 2", naive, TARGET_RATIO_TO_NAIVE),
        Verdict(
            f"row 4 > {TARGET_BATCH_EVENTS_PER_SECOND:,} events/s",
            f"{batch_events:,.0f} events/s",
            batch_events > TARGET_BATCH_EVENTS_PER_SECOND,
        ),
    ]


def latency_verdict(fixed: Result) -> Verdict:
    """The issue's latency target: row 3's p99 at the fixed offered rate."""
    offered = f"{FIXED_RATE_EVENTS_PER_SECOND} events/s offered"
    return Verdict(
        f"row 3 p99 < {TARGET_FIXED_RATE_P99 * 1000:.0f} ms at {offered}",
        f"{fixed.p99 * 1000:.1f} ms",
        fixed.p99 < TARGET_FIXED_RATE_P99,
    )


def run_hey(server_pid: int, url: str, body_file: Path, *load: str) -> Result:
    """Run hey with the `load` options (-z/-n, -c, -q) against the gunicorn of `server_pid`;
    parse its summary."""
    argv = ["hey", *load, "-m", "POST", "-T", "application/json", "-D", str(body_file), url]
    cpu_before = process_tree_cpu(server_pid)
    psutil.cpu_times_percent()  # the machine's shares below are since this call
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600).stdout
    machine = psutil.cpu_times_percent()
    server_cpu = process_tree_cpu(server_pid) - cpu_before
    responses = sum(hey_statuses(output).values())
    return dataclasses.replace(
        parse_hey(output),
        server_cpu_per_request=server_cpu / responses if responses else float("nan"),
        steal=machine.steal / 100,
    )


def hey_statuses(hey_output: str) -> dict[int, int]:
    """Responses by HTTP status, from hey's summary."""
    pairs = re.findall(r"\[(\d+)\]\s+(\d+) responses", hey_output)
    return {int(code): int(count) for code, count in pairs}


def parse_hey(hey_output: str) -> Result:
    """hey's summary: requests/s, p50, p99, and failures (non-200 responses and errors)."""
    statuses = hey_statuses(hey_output)
    errors = hey_output.split("Error distribution:")[1] if "Error distribution:" in hey_output else ""
    return Result(
        requests_per_second=number(r"Requests/sec:\s+([\d.]+)", hey_output),
        p50=number(r"50% in ([\d.]+) secs", hey_output),
        p99=number(r"99% in ([\d.]+) secs", hey_output),
        failures=sum(count for code, count in statuses.items() if code != 200)
        + sum(int(count) for count in re.findall(r"^\s+\[(\d+)\]", errors, re.MULTILINE)),
    )


def number(pattern: str, hey_output: str) -> float:
    match = re.search(pattern, hey_output)
    return float(match[1]) if match else float("nan")


@contextmanager
def gunicorn(
    target: str, env: dict[str, str], run_dir: Path, extra: Sequence[str]
) -> Iterator[tuple[str, int]]:
    """One gunicorn serving `target` on a free loopback port, under gunicorn.conf.py: its
    URL, and its master's pid."""
    port = free_port()
    argv = [str(PYTHON_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "-b", f"{HOST}:{port}", *extra, target]
    process = ManagedProcess(target.replace(":", "-"), argv, env, run_dir).start()
    try:
        wait_until(lambda: port_open(port), STARTUP_TIMEOUT, f"{target} on {port}")
        yield f"http://{HOST}:{port}", pid_of(process)
    finally:
        process.stop()


@contextmanager
def bench_redis(run_dir: Path) -> Iterator[str]:
    """A Redis like production's on a free loopback port; flushed and stopped on exit."""
    port = free_port()
    data_dir = run_dir / "redis"
    data_dir.mkdir()
    process = ManagedProcess("redis", redis_argv(port, data_dir), {}, run_dir).start()
    url = f"redis://{HOST}:{port}/0"
    try:
        wait_until(lambda: port_open(port), STARTUP_TIMEOUT, f"redis on {port}")
        yield url
    finally:
        if process.running():
            redis.Redis.from_url(url).flushall()
        process.stop()


def measure(
    row: Row, server_pid: int, url: str, body_file: Path, concurrency: int, seconds: int, client: redis.Redis
) -> Result:
    # Warm-up: every worker imports its app and opens its broker connection; a failure
    # here means the setup is wrong, not slow.
    warm_up = run_hey(server_pid, url, body_file, "-n", str(concurrency * 25), "-c", str(concurrency))
    if warm_up.failures:
        raise RuntimeError(f"{row.label}: {warm_up.failures} failed warm-up requests")
    before = tally(client)
    result = run_hey(server_pid, url, body_file, "-z", f"{seconds}s", "-c", str(concurrency))
    return dataclasses.replace(result, events_per_message=events_per_message(before, tally(client)))


def gunicorn_summary(extra: Sequence[str]) -> str:
    # Read in a process of its own, as gunicorn reads it: it patches gevent into its reader.
    probe = (
        "import json, runpy; config = runpy.run_path('gunicorn.conf.py');"
        "print(json.dumps({key: config.get(key) for key in ('workers', 'worker_class', 'threads')}))"
    )
    read = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    config = json.loads(read.stdout)
    overrides = dict(zip(extra[::2], extra[1::2], strict=True))
    worker_class = overrides.get("-k", config["worker_class"])
    threads = overrides.get("--threads", config["threads"] or 1)
    return f"{config['workers']} {worker_class} workers x {threads} threads"


def print_table(rows: Sequence[Row], results: Sequence[Result]) -> None:
    base = results[0].requests_per_second
    print(f"{'':3}{'endpoint':38}{'requests/s':>11}{'events/s':>10}{'p50 ms':>8}{'p99 ms':>8}", end="")
    print(f"{'req/s vs 1':>11}{'events/s vs 1':>14}{'failed':>7}", end="")
    print(f"{'CPU ms/req':>11}{'steal':>7}{'events/msg':>11}")
    for number, (row, result) in enumerate(zip(rows, results, strict=True), start=1):
        events = result.requests_per_second * row.events_per_request
        per_message = "-" if math.isnan(result.events_per_message) else f"{result.events_per_message:.1f}"
        print(
            f"{number:<3}{row.label:38}{result.requests_per_second:>11,.0f}{events:>10,.0f}"
            f"{result.p50 * 1000:>8.1f}{result.p99 * 1000:>8.1f}"
            f"{result.requests_per_second / base:>11.2f}{events / base:>14.2f}{result.failures:>7}"
            f"{result.server_cpu_per_request * 1000:>11.2f}{result.steal:>7.0%}{per_message:>11}"
        )
    print("CPU ms/req: gunicorn's CPU time per response; steal: the share of the machine's CPU")
    print("time the hypervisor gave to other guests during the row; events/msg: events a queued")
    print("message carried (group commit's groups), where the product's enqueue ran")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="duration of each row (default 10)")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=list(DEFAULT_CONCURRENCY),
        help="hey's concurrent clients, one table per level (default: 8 64)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="passes over the rows (default 3)")
    parser.add_argument(
        "--ceilings",
        action="store_true",
        help="add row 3 with its enqueue swapped out, and without rate limits",
    )
    parser.add_argument("--worker-class", help="override gunicorn.conf.py's worker_class")
    parser.add_argument("--threads", type=int, help="override gunicorn.conf.py's threads")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if min(args.concurrency) < 1:
        parser.error("--concurrency must be at least 1")
    if shutil.which("hey") is None:
        sys.exit("bench: `hey` is not on PATH; install it (Debian: apt-get install hey) and run again")
    extra = [*(["-k", args.worker_class] if args.worker_class else [])]
    extra += ["--threads", str(args.threads)] if args.threads else []

    rows = ROWS + CEILING_ROWS if args.ceilings else ROWS
    print(f"machine: {os.cpu_count()} cores; gunicorn: {gunicorn_summary(extra)}; hey on loopback:")
    levels = ", ".join(str(level) for level in args.concurrency)
    print(f"{levels} concurrent clients, {args.seconds} s per row; Redis fsync always, no worker")
    rounds = []
    for number in range(1, args.rounds + 1):
        print(f"\nround {number} of {args.rounds}" if args.rounds > 1 else "")
        rounds.append(run_round(rows, extra, args))
        print_round(rows, rounds[-1])
    if args.rounds > 1:
        print(f"\nmedian of {args.rounds} rounds (failures summed)")
        print_round(rows, median_round(rounds))


def run_round(rows: Sequence[Row], extra: Sequence[str], args: argparse.Namespace) -> Round:
    """Every row once at each concurrency level, against a Redis of its own."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, bench_redis(Path(tmp)) as redis_url:
        run_dir = Path(tmp)
        client = redis.Redis.from_url(redis_url)
        # Ingestion never talks to MongoDB; the URI only has to parse. The bodies carry a
        # fixed 2025 date, hence the wide window of accepted timestamps. No worker drains the
        # queue here, so no high-water mark may stop the load.
        env = {
            **UNLIMITED_RATES,
            **FIXED_DATES_ENV,
            "QUEUE_HIGH_WATER": "0",
            "REDIS_URL": redis_url,
            "MONGO_URI": f"mongodb://{HOST}:1/bench",
        }
        done = Round({level: [] for level in args.concurrency}, {})
        for row in rows:
            body_file = run_dir / f"body-{row.events_per_request}.json"
            body_file.write_bytes(row.body())
            with gunicorn(row.target, {**env, **row.env}, run_dir, extra) as (url, server_pid):
                for level in args.concurrency:
                    result = measure(row, server_pid, url + row.path, body_file, level, args.seconds, client)
                    done.results[level].append(result)
                if row.at_fixed_rate:
                    done.fixed[row.label] = fixed_rate(server_pid, url + row.path, body_file, args.seconds)
    return done


def print_round(rows: Sequence[Row], done: Round) -> None:
    for level, results in done.results.items():
        print(f"{level} concurrent clients")
        print_table(rows, results)
        for verdict in throughput_verdicts(results):
            print(verdict)
    for label, result in done.fixed.items():
        print(
            f"{label} at a fixed {FIXED_RATE_EVENTS_PER_SECOND} events/s offered "
            f"({FIXED_RATE_CLIENTS} clients x {FIXED_RATE_EVENTS_PER_SECOND // FIXED_RATE_CLIENTS}/s): "
            f"{result.requests_per_second:,.0f} requests/s served, p50 {result.p50 * 1000:.1f} ms, "
            f"p99 {result.p99 * 1000:.1f} ms, {result.failures} failed, "
            f"{result.server_cpu_per_request * 1000:.2f} CPU ms/req, {result.steal:.0%} steal"
        )
    print(latency_verdict(done.fixed[ROWS[EVENT].label]))


def fixed_rate(server_pid: int, url: str, body_file: Path, seconds: int) -> Result:
    """Row 3 at a fixed offered rate: hey's -q is per client, so the total is clients x q."""
    per_client = str(FIXED_RATE_EVENTS_PER_SECOND // FIXED_RATE_CLIENTS)
    load = ("-z", f"{seconds}s", "-c", str(FIXED_RATE_CLIENTS), "-q", per_client)
    return run_hey(server_pid, url, body_file, *load)


if __name__ == "__main__":
    main()
