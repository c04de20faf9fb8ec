"""FerretDB's `_id` pushdown: stock v1.24.2 against the patched build of tools/ferretdb/.

    .venv/bin/python -m bench.ferretdb_pushdown [--events 1000000] [--sites 1000] [--repeats 20]

It builds both servers: "stock" is FerretDB v1.24.2 with the wrapper as it was before the patch
(BASELINE: it indexed `->'$._id'`, which served `_id` equality only), "patched" is what `make`
builds now. It loads N events once into the stock server, keyed `site\\x1fISO-ms-Z\\x1fevent_id`
over SITES Zipf-distributed sites and 30 days in arrival order, plus a tiny site with 24 events
on one day; then copies the store for the patched server (whose wrapper builds its index on
start). On each it times, sequentially over one connection: the tiny site's day read by `_id`
range in order, `$in` of 100 ids, equality, and the first 10 events of the largest site's day
in order. Each question runs up to `--repeats` times or `--budget` seconds (at least once). It
prints a table and whether both servers gave the same answers; it never asserts figures.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection

from tools.local_services import PROJECT_ROOT
from tools.processes import ManagedProcess, free_port, port_open, wait_until

# The last commit before tools/ferretdb/id-pushdown.patch: its wrapper is the stock build's.
BASELINE = "528d270"
SEP = "\x1f"
DAYS = 30
START = datetime(2025, 11, 1, tzinfo=UTC)
TINY_SITE = "tiny.example"
TINY_DAY = START + timedelta(days=15)
TINY_EVENTS = 24
BIG_DAY = START + timedelta(days=20)
SITE_EXPONENT = 1.1
INSERT_CHUNK = 10_000
IN_SIZE = 100
SEED = 20261207


def key(site: str, at: datetime, event_id: str) -> str:
    """An event's `_id` as DESIGN B lays it out."""
    return f"{site}{SEP}{at.strftime('%Y-%m-%dT%H:%M:%S.')}{at.microsecond // 1000:03d}Z{SEP}{event_id}"


def day_range(site: str, day: datetime) -> dict[str, str]:
    """The `_id` range of one site's UTC day."""
    return {"$gte": f"{site}{SEP}{day:%Y-%m-%d}", "$lt": f"{site}{SEP}{day + timedelta(days=1):%Y-%m-%d}"}


@dataclass
class Store:
    """What was loaded: the biggest site and ids to look up."""

    big_site: str
    lookups: list[str]
    events: int
    seconds: float


def events(count: int, sites: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """`count` events of `sites` Zipf-weighted sites in arrival order, with the tiny site's
    day spread among them."""
    names = [f"site-{n:04d}.example" for n in range(sites)]
    weights = [1 / (rank + 1) ** SITE_EXPONENT for rank in range(sites)]
    tiny_at = sorted(TINY_DAY + timedelta(seconds=rng.uniform(0, 86_400)) for _ in range(TINY_EVENTS))
    step = timedelta(days=DAYS) / count
    picked = rng.choices(names, weights, k=count)
    for n, site in enumerate(picked):
        at = START + step * n
        while tiny_at and tiny_at[0] <= at:
            yield document(TINY_SITE, tiny_at.pop(0), rng)
        yield document(site, at, rng)


def document(site: str, at: datetime, rng: random.Random) -> dict[str, Any]:
    """An event document shaped as the worker stores one."""
    event_id = uuid.UUID(int=rng.getrandbits(128)).hex
    return {
        "_id": key(site, at, event_id),
        "event_id": event_id,
        "batch_id": None,
        "site_id": site,
        "event_type": "page_view",
        "path": f"/page/{rng.randrange(500)}",
        "user_id": f"user-{rng.randrange(100_000)}",
        "timestamp": at,
        "created_at": at,
        "updated_at": at,
    }


def load(collection: Collection[dict[str, Any]], count: int, sites: int) -> Store:
    rng = random.Random(SEED)
    started = time.monotonic()
    per_site: dict[str, int] = {}
    ids: list[str] = []
    chunk: list[dict[str, Any]] = []
    stored = 0
    for doc in events(count, sites, rng):
        chunk.append(doc)
        per_site[doc["site_id"]] = per_site.get(doc["site_id"], 0) + 1
        if rng.random() < 4 * IN_SIZE / count:
            ids.append(doc["_id"])
        if len(chunk) == INSERT_CHUNK:
            collection.insert_many(chunk, ordered=False)
            stored += len(chunk)
            chunk = []
    if chunk:
        collection.insert_many(chunk, ordered=False)
        stored += len(chunk)
    rng.shuffle(ids)
    big_site = max(per_site, key=lambda site: per_site[site])
    return Store(big_site, ids[: 2 * IN_SIZE], stored, time.monotonic() - started)


def build(root: Path) -> dict[str, Path]:
    """Both servers' binaries: stock from BASELINE's wrapper, patched by build.sh."""
    stock_src = root / "stock-src"
    stock_src.mkdir()
    git = ["git", "-C", str(PROJECT_ROOT), "archive", BASELINE, "tools/ferretdb"]
    archive = subprocess.run(git, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(stock_src)], input=archive.stdout, check=True)
    binaries = {"stock": root / "ferretdb-stock", "patched": root / "ferretdb-patched"}
    go_build = ["go", "build", "-o", str(binaries["stock"]), "."]
    subprocess.run(go_build, cwd=stock_src / "tools/ferretdb", check=True)
    subprocess.run([str(PROJECT_ROOT / "tools/ferretdb/build.sh"), str(binaries["patched"])], check=True)
    return binaries


@contextmanager
def server(binary: Path, data_dir: Path, root: Path) -> Iterator[MongoClient[dict[str, Any]]]:
    port = free_port()
    argv = [str(binary), "-listen-addr", f"127.0.0.1:{port}", "-sqlite-url", f"file:{data_dir}/"]
    process = ManagedProcess(binary.name, argv, {}, root).start()
    client: MongoClient[dict[str, Any]] = MongoClient(f"mongodb://127.0.0.1:{port}/", socketTimeoutMS=600_000)
    try:
        wait_until(lambda: port_open(port), 30, binary.name)
        yield client
    finally:
        client.close()
        process.stop()


def questions(store: Store) -> dict[str, Callable[[Collection[dict[str, Any]], int], list[Any]]]:
    """Each question, given the collection and the run's number; it returns the ids found."""
    tiny_day = day_range(TINY_SITE, TINY_DAY)
    big_day = day_range(store.big_site, BIG_DAY)
    in_ids = store.lookups[:IN_SIZE]

    def ids(found: Any) -> list[Any]:
        return [doc["_id"] for doc in found]

    return {
        f"tiny site's day by `_id` range, in order ({TINY_EVENTS} events)": lambda c, _: ids(
            c.find({"_id": tiny_day}).sort("_id", 1)
        ),
        f"`$in` of {IN_SIZE} ids": lambda c, _: sorted(ids(c.find({"_id": {"$in": in_ids}}))),
        "`_id` equality (find_one)": lambda c, n: ids(
            [c.find_one({"_id": store.lookups[IN_SIZE + n % IN_SIZE]})]
        ),
        "first 10 of the largest site's day, in order": lambda c, _: ids(
            c.find({"_id": big_day}).sort("_id", 1).limit(10)
        ),
    }


@dataclass
class Timing:
    median_ms: float
    p95_ms: float
    runs: int
    answers: list[list[Any]]


def time_question(
    question: Callable[[Collection[dict[str, Any]], int], list[Any]],
    collection: Collection[dict[str, Any]],
    repeats: int,
    budget: float,
) -> Timing:
    """Time runs of a question until `repeats` or `budget`. The first run warms caches up and
    is left out, unless it alone took a tenth of the budget (a scan, warm or not)."""
    seconds: list[float] = []
    answers: list[list[Any]] = []
    warm = False
    spent = time.monotonic()
    while len(seconds) < repeats and (not seconds or time.monotonic() - spent < budget):
        started = time.perf_counter()
        answers.append(question(collection, len(seconds)))
        seconds.append(time.perf_counter() - started)
        if not warm and seconds[0] < budget / 10:
            seconds, answers = [], []
        warm = True
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return Timing(statistics.median(seconds) * 1000, p95 * 1000, len(seconds), answers)


def time_all(
    client: MongoClient[dict[str, Any]], store: Store, repeats: int, budget: float
) -> dict[str, Timing]:
    collection = client.bench.events
    return {name: time_question(q, collection, repeats, budget) for name, q in questions(store).items()}


def wait_for_index(client: MongoClient[dict[str, Any]]) -> float:
    """Seconds until the patched wrapper's index serves the tiny site's range."""
    started = time.monotonic()
    command = {"find": "events", "filter": {"_id": day_range(TINY_SITE, TINY_DAY)}}

    def indexed() -> bool:
        plan = client.bench.command("explain", command)["queryPlanner"]["Plan"]
        return any("USING INDEX" in step for step in plan)

    wait_until(indexed, 600, "the _id index", 0.5)
    return time.monotonic() - started


def print_table(stock: dict[str, Timing], patched: dict[str, Timing]) -> None:
    print("| question | stock p50 | stock p95 (runs) | patched p50 | patched p95 (runs) | ratio (p50) |")
    print("|---|---|---|---|---|---|")
    for name, before in stock.items():
        after = patched[name]
        print(
            f"| {name} | {before.median_ms:,.1f} ms | {before.p95_ms:,.1f} ms ({before.runs}) "
            f"| {after.median_ms:,.2f} ms | {after.p95_ms:,.2f} ms ({after.runs}) "
            f"| {before.median_ms / after.median_ms:,.0f} |"
        )


def same_answers(stock: dict[str, Timing], patched: dict[str, Timing]) -> bool:
    runs = {name: min(stock[name].runs, patched[name].runs) for name in stock}
    return all(stock[name].answers[: runs[name]] == patched[name].answers[: runs[name]] for name in stock)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the other sites")
    parser.add_argument("--sites", type=int, default=1000, help="sites sharing them (Zipf)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of each question at most")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds of runs of a question at most")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ferretdb-"))
    try:
        binaries = build(root)
        stock_dir, patched_dir = root / "stock", root / "patched"
        stock_dir.mkdir()
        with server(binaries["stock"], stock_dir, root) as client:
            store = load(client.bench.events, args.events, args.sites)
            print(f"loaded {store.events:,} events of {args.sites + 1} sites in {store.seconds:.0f} s")
            stock = time_all(client, store, args.repeats, args.budget)
        shutil.copytree(stock_dir, patched_dir)
        with server(binaries["patched"], patched_dir, root) as client:
            print(f"patched wrapper indexed the copied store in {wait_for_index(client):.0f} s")
            patched = time_all(client, store, args.repeats, args.budget)
        size = sum(f.stat().st_size for f in stock_dir.iterdir()) / 2**20
        print(f"store: {size:,.0f} MiB; the largest site: {store.big_site}")
        print_table(stock, patched)
        print(f"same answers on both servers: {'yes' if same_answers(stock, patched) else 'NO'}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
