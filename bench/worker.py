"""Worker throughput: the batch design against a naive one-task-per-event baseline.

    .venv/bin/python -m bench.worker [--events 3000] [--batch-sizes 10 100] [--profile]
                                     [--visits 0 1] [--visitors N] [--no-baselines]

For each design and worker size (1 and 2 processes) it starts a fresh Redis and MongoDB
server on loopback, enqueues N events (10 N for all but the naive design, which is that
much slower) with no worker running, starts one worker, and times
from the worker's first take from the queue until the queue is drained and nothing is left
unacknowledged; then it checks MongoDB holds exactly N events. It also prints the CPU
seconds the worker and the MongoDB server used, and with --profile where the worker's time
went (py-spy). With --visits, each batch design runs once per VISITS value given, one after
the other, and the time until the worker's compactor has also folded every batch into the
rollups and the visits is printed too; the events are of 50 sites, one user each (the worst
case for visits: 50 visits that grow long), or of VISITORS users with --visitors.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import redis
from pymongo import MongoClient

from app import create_app
from app.queue import QUEUE, UNACKED_KEY, ledger
from app.queue.publish import enqueue_events
from app.rollups import compactor
from app.settings import Settings
from tools.browsing import visitor_fields
from tools.factories import FIXED_DATES_ENV, make_message
from tools.local_services import mongo_argv, redis_argv
from tools.processes import (
    PYTHON_BIN,
    UNLIMITED_RATES,
    ManagedProcess,
    celery_argv,
    free_port,
    port_open,
    wait_until,
)

DRAIN_TIMEOUT = 900


@dataclass(frozen=True)
class Design:
    name: str
    batch_size: int  # events per queued message
    task: str = ""  # a baseline task of bench/baseline_tasks.py; "" for the project's own
    worker_options: tuple[str, ...] = ()
    visits: str = ""  # the worker's VISITS setting, if given

    @property
    def is_naive(self) -> bool:
        return self.task == "persist_event_naive"


NAIVE = Design("naive: a task and insert_one per event", 1, "persist_event_naive")
# celery-batches buffers messages in the worker, so the worker must prefetch many (0, "no
# limit", is read as "not set" by the worker command line).
CELERY_BATCHES = Design(
    "celery-batches: 1-event messages, flush 100",
    1,
    "persist_event_buffered",
    ("--prefetch-multiplier=1000",),
)


@dataclass(frozen=True)
class Run:
    design: Design
    processes: int
    events: int
    seconds: float
    worker_cpu: float
    mongo_cpu: float
    folded_seconds: float  # until the compactor had added every batch too

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def event_messages(count: int, visitors: int = 0) -> list[dict[str, Any]]:
    """Page views as a tracker sends them: with the URL, the referrer and the visitor's user
    agent, for the worker to derive the source and device from; of one user a site, or of
    `visitors` users."""
    return [
        make_message(site_id=f"site-{n % 50}", path=f"/p{n % 200}")
        | visitor_fields(n)
        | ({"user_id": f"user-{n % visitors}"} if visitors else {})
        for n in range(count)
    ]


def process_tree_cpu(pid: int) -> float:
    """User + system CPU seconds used so far by a process and its live descendants."""
    root = psutil.Process(pid)
    total = 0.0
    for member in (root, *root.children(recursive=True)):
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:  # ended since it was listed
            continue
        total += times.user + times.system
    return total


def enqueue(env: dict[str, str], design: Design, events: list[dict[str, Any]]) -> None:
    """Queue the events the way the design sends them, with no worker running."""
    flask_app = create_app("ingestion", Settings.from_env(env))
    with flask_app.app_context():
        if design.task:
            from bench import baseline_tasks

            task = getattr(baseline_tasks, design.task)
            for event in events:
                task.apply_async(args=[event])
            return
        for start in range(0, len(events), design.batch_size):
            enqueue_events(events[start : start + design.batch_size])


@contextmanager
def servers(root: Path) -> Iterator[tuple[dict[str, str], ManagedProcess]]:
    """A fresh Redis and MongoDB server on loopback; yields the env and the MongoDB process."""
    started: list[ManagedProcess] = []
    ports = {}
    try:
        for name, build in (("redis", redis_argv), ("mongo", mongo_argv)):
            ports[name] = free_port()
            (root / name).mkdir(exist_ok=True)
            started.append(ManagedProcess(name, build(ports[name], root / name), {}, root).start())
            wait_until(partial(port_open, ports[name]), 30, name)
        env = {
            **UNLIMITED_RATES,
            "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
            "MONGO_URI": f"mongodb://127.0.0.1:{ports['mongo']}/bench",
            **FIXED_DATES_ENV,  # an ingestion service started with it takes fixed 2025 dates
        }
        yield env, started[1]
    finally:
        for process in started:
            process.stop()


def pid_of(process: ManagedProcess) -> int:
    assert process.process is not None
    return process.process.pid


def measure(design: Design, processes: int, events: list[dict[str, Any]], profile: bool) -> Run:
    root = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    try:
        with servers(root) as (env, mongo):
            enqueue(env, design, events)
            broker = redis.Redis.from_url(env["REDIS_URL"])
            queued = broker.llen(QUEUE)
            worker_env = {**env, "WORKER_CONCURRENCY": str(processes)}
            if design.visits:
                worker_env["VISITS"] = design.visits
            argv = celery_argv(
                "worker", "--loglevel=warning", "-I", "bench.baseline_tasks", *design.worker_options
            )
            worker = ManagedProcess("worker", argv, worker_env, root).start()
            wait_until(lambda: broker.llen(QUEUE) < queued, 120, "the worker's first take", interval=0.005)
            worker_cpu, mongo_cpu = process_tree_cpu(pid_of(worker)), process_tree_cpu(pid_of(mongo))
            with profiler(pid_of(worker), root / "profile.txt", enabled=profile):
                started = time.monotonic()
                wait_until(lambda: drained(broker), DRAIN_TIMEOUT, "the queue to drain", interval=0.02)
                seconds = time.monotonic() - started
            if not design.task:
                wait_until(
                    lambda: compactor.backlog(broker) == 0, DRAIN_TIMEOUT, "the compactor", interval=0.02
                )
            folded_seconds = time.monotonic() - started
            worker_cpu = process_tree_cpu(pid_of(worker)) - worker_cpu
            mongo_cpu = process_tree_cpu(pid_of(mongo)) - mongo_cpu
            worker.stop()
            client: MongoClient[dict[str, Any]]
            with MongoClient(env["MONGO_URI"]) as client:
                stored = client.get_default_database().events.count_documents({})
            assert stored == len(events), f"{design.name}: {stored} of {len(events)} events stored"
            if profile:
                print_profile(design, processes, root / "profile.txt")
        return Run(design, processes, len(events), seconds, worker_cpu, mongo_cpu, folded_seconds)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def drained(broker: redis.Redis) -> bool:
    """Nothing queued, held or unsettled. The ledger covers the moment kombu has taken a
    message off the queue and not yet recorded it as unacknowledged (the baseline designs
    keep no ledger)."""
    return broker.llen(QUEUE) == 0 and broker.hlen(UNACKED_KEY) == 0 and ledger.outstanding(broker) == 0


@contextmanager
def profiler(pid: int, output: Path, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    argv = [str(PYTHON_BIN / "py-spy"), "record", "--pid", str(pid), "--subprocesses"]
    spy = subprocess.Popen(
        [*argv, "--format", "raw", "--output", str(output), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        spy.wait(timeout=60)


def print_profile(design: Design, processes: int, collapsed: Path, top: int = 12) -> None:
    """The functions the worker spent most samples in (self time, all processes)."""
    if not collapsed.exists():
        print(f"(py-spy wrote no profile for {design.name})")
        return
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        own[leaf] += int(samples)
        total += int(samples)
    print(f"\nprofile: {design.name}, {processes} process(es), {total} samples, self time")
    for frame, count in own.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {frame[:110]}")


def print_table(runs: list[Run]) -> None:
    naive = {run.processes: run for run in runs if run.design.is_naive}
    header = f"{'design':<52} {'procs':>5} {'events':>7} {'seconds':>8} {'events/s':>9} {'x naive':>8}"
    print(f"\n{header}  worker CPU s  MongoDB CPU s  folded s")
    for run in runs:
        ratio = f"{run.rate / naive[run.processes].rate:>8.1f}" if run.processes in naive else f"{'-':>8}"
        print(
            f"{run.design.name:<52} {run.processes:>5} {run.events:>7} {run.seconds:>8.2f} "
            f"{run.rate:>9.0f} {ratio}  {run.worker_cpu:>12.1f}  {run.mongo_cpu:>13.1f}"
            f"  {run.folded_seconds:>8.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, default=3000, help="events of a naive run")
    parser.add_argument("--batch-factor", type=int, default=10, help="batch runs get this many times more")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--profile", action="store_true", help="profile the worker with py-spy")
    parser.add_argument("--visits", nargs="+", choices=["0", "1"], default=[], help="VISITS values to run")
    parser.add_argument("--visitors", type=int, default=0, help="distinct users (0: one per site)")
    parser.add_argument("--no-baselines", action="store_true", help="only the batch designs")
    args = parser.parse_args()
    baselines = [] if args.no_baselines else [NAIVE, CELERY_BATCHES]
    designs = baselines + [
        Design(
            f"batch: {size} events a message, insert_many{f', VISITS={visits}' if visits else ''}",
            size,
            visits=visits,
        )
        for size in args.batch_sizes
        for visits in args.visits or [""]
    ]
    events = event_messages(args.events * args.batch_factor, args.visitors)
    print(f"{os.cpu_count()} cores; MongoDB server: {mongo_argv(0, Path())[0]}")
    runs = []
    for processes in args.processes:
        for design in designs:
            count = args.events if design.is_naive else len(events)
            runs.append(measure(design, processes, events[:count], args.profile))
            print(f"  {design.name}, {processes} process(es): {runs[-1].rate:.0f} events/s", flush=True)
    print_table(runs)


if __name__ == "__main__":
    main()
