"""A worker writing while a benchmark asks its questions: ingestion, one Celery worker and a
sender thread posting a steady stream of events of other sites through `POST /events`.

Used by `bench/reporting.py --writer-rate`, so that its figures are those of a store being
written to, as the issue's targets ask.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis
import requests

from app.queue import counters
from bench.ingest import gunicorn
from tools.factories import BROWSER_USER_AGENT
from tools.processes import ManagedProcess, celery_argv, wait_until

WRITER_SITES = 20
# The stream is sent as this many `POST /events` a second, each of rate / SENDS_PER_SECOND events.
SENDS_PER_SECOND = 10
WORKER_STARTUP_SECONDS = 180


@dataclass
class Writing:
    """What the sender did, and the worker's persisted counter when it started."""

    rate: int
    client: redis.Redis
    persisted_before: int
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    refused: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def persisted(self) -> int:
        """Events the worker stored since the stream began."""
        return counters.totals(self.client).persisted - self.persisted_before

    def summary(self) -> str:
        seconds = time.monotonic() - self.started
        stored = self.persisted()
        return (
            f"worker writing: {self.sent:,} events sent at {self.rate}/s asked ({self.refused} refused), "
            f"{stored:,} stored over {seconds:.0f} s ({stored / seconds:,.0f} events/s)"
        )


def stream_events(rate: int, count: int, number: int) -> list[dict[str, str]]:
    """`count` events of today, now, for the writer's sites: page views with a browser's fields."""
    now = datetime.now(UTC).isoformat()
    return [
        {
            "site_id": f"writer-{(number + index) % WRITER_SITES:02d}",
            "event_type": "page_view",
            "path": f"/page/{(number * 7 + index) % 50}",
            "user_id": f"writer-user-{(number + index) % (rate * 60 or 1)}",
            "timestamp": now,
            "url": f"https://writer.example/page/{index % 50}?utm_source=news",
            "referrer": "https://www.google.com/",
            "user_agent": BROWSER_USER_AGENT,
            "event_id": str(uuid.uuid4()),
        }
        for index in range(count)
    ]


def send(writing: Writing, ingestion_url: str) -> None:
    """Post the stream until told to stop, keeping to the rate whatever each post took."""
    per_send = max(1, writing.rate // SENDS_PER_SECOND)
    interval = per_send / writing.rate
    due = time.monotonic()
    with requests.Session() as session:
        while not writing.stop.is_set():
            events = stream_events(writing.rate, per_send, writing.sent)
            try:
                answer = session.post(f"{ingestion_url}/events", json={"events": events}, timeout=10)
                accepted = answer.status_code == 200
            except requests.RequestException:
                accepted = False
            writing.sent += per_send
            writing.refused += 0 if accepted else per_send
            due += interval
            writing.stop.wait(max(0.0, due - time.monotonic()))


@contextmanager
def worker_writing(env: dict[str, str], run_dir: Path, rate: int) -> Iterator[Writing]:
    """A Celery worker and ingestion on the benchmark's servers, and a thread posting `rate`
    events a second to them, until the block ends; everything stops on leaving."""
    with ExitStack() as stack:
        worker = ManagedProcess("writer-worker", celery_argv("worker"), env, run_dir).start()
        stack.callback(worker.stop)
        wait_until(lambda: " ready." in worker.log(), WORKER_STARTUP_SECONDS, "the worker to be ready")
        ingestion_url, _ = stack.enter_context(gunicorn("wsgi:ingestion", env, run_dir, []))
        client = redis.Redis.from_url(env["REDIS_URL"])
        stack.callback(client.close)
        writing = Writing(rate, client, counters.totals(client).persisted)
        sender = threading.Thread(target=send, args=(writing, ingestion_url), daemon=True)
        sender.start()
        stack.callback(sender.join)
        stack.callback(writing.stop.set)
        yield writing
