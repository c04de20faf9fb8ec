"""What the worker's enrichment and the dimension tallies cost per 1,000 events, in-process.

    .venv/bin/python -m bench.enrichment [--events 20000] [--runs 5]

Events as `bench.worker` queues them (a URL, a referrer, one of 500 distinct user
agents), stored documents built from them as the worker builds them. It prints the median
CPU (process time) per 1,000 events of: `enrich` with the user-agent cache cold and warm;
the rollup deltas (`quarter_documents`) of documents without and with the derived fields.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app.enrichment import agents, enrich
from app.rollups.tally import quarter_documents
from app.store.events import event_document
from bench.worker import event_messages


def cpu_ms_per_thousand(work: Callable[[], Any], events: int, runs: int, before: Callable[[], Any]) -> float:
    """The median over `runs` of `work()`'s CPU milliseconds per 1,000 events, `before()`
    run untimed ahead of each."""
    figures = []
    for _ in range(runs):
        before()
        started = time.process_time()
        work()
        figures.append((time.process_time() - started) * 1000 / (events / 1000))
    return statistics.median(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    messages = event_messages(args.events)
    now = datetime.now(UTC)
    enriched = [enrich(message) for message in messages]
    plain = [
        event_document({k: v for k, v in m.items() if k not in ("url", "referrer", "user_agent")}, now)
        for m in messages
    ]
    documents = [event_document(message, now) for message in enriched]
    agents_seen = len({message["user_agent"] for message in messages})
    rows = [
        ("enrich, user-agent cache cold", lambda: [enrich(m) for m in messages], agents.describe.cache_clear),
        ("enrich, user-agent cache warm", lambda: [enrich(m) for m in messages], lambda: None),
        ("rollup deltas, no derived fields", lambda: quarter_documents(plain), lambda: None),
        ("rollup deltas, with derived fields", lambda: quarter_documents(documents), lambda: None),
    ]
    print(f"{args.events} events, {agents_seen} distinct user agents, median of {args.runs} runs")
    print(f"{'step':<38} CPU ms per 1,000 events")
    for name, work, before in rows:
        print(f"{name:<38} {cpu_ms_per_thousand(work, args.events, args.runs, before):>10.1f}")


if __name__ == "__main__":
    main()
