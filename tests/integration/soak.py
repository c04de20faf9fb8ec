"""The soak test's load: a mix of good and bad requests as real clients send them, offered at
a fixed rate on loopback, each answer checked against what its kind must get."""

from __future__ import annotations

import functools
import gzip
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.compression import MIB, gzip_bomb
from tools.factories import make_event

DAYS = ("2025-11-15", "2025-11-16")
JSON = "application/json"
# Concurrent clients: enough that a slow answer never holds back the offered rate.
CLIENTS = 32
# Longer than reporting's query time limit, so that a slow question is seen as its answer.
TIMEOUT = 30


@dataclass(frozen=True)
class Shot:
    """One request of the mix, the status it must get and the events it must have accepted,
    by (site, day)."""

    kind: str
    service: str
    path: str
    status: int
    body: bytes | None = None
    content_type: str = JSON
    encoding: str | None = None
    params: dict[str, str] | None = None
    events: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass
class Tally:
    """What the load did: answers by status, events accepted by (site, day), latencies, and the
    answers that were not what their kind must get."""

    statuses: Counter[int] = field(default_factory=Counter)
    accepted: Counter[tuple[str, str]] = field(default_factory=Counter)
    # "kind: got instead of expected" -> how often, and the first such answer's body.
    wrong: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"ingestion": [], "reporting": []})
    # How long the requests took to send: the achieved offered rate is requests / seconds.
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def latency(self, service: str) -> str:
        """Median, 99th percentile and slowest answer of a service, in milliseconds."""
        ordered = sorted(self.latencies[service])
        if not ordered:
            return "none"
        median, p99 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]
        return f"p50 {median * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"

    def wrong_answers(self) -> str:
        return "\n".join(f"{count} x {what}, e.g. {self.samples[what]}" for what, count in self.wrong.items())


class Mix:
    """Draws shots for the soaked sites, with a seeded generator so a run can be replayed."""

    def __init__(self, sites: list[str], seed: int) -> None:
        self.sites = sites
        self.rng = random.Random(seed)
        # (builder, weight): most traffic is good events and questions, as on a real site.
        self.kinds: list[tuple[Callable[[], Shot], int]] = [
            (self.event, 30),
            (self.batch, 8),
            (self.mixed_batch, 4),
            (self.beacon, 4),
            (self.gzip_batch, 4),
            (self.malformed_json, 3),
            (self.missing_fields, 3),
            (self.bad_timestamp, 3),
            (self.control_characters, 2),
            (self.lone_surrogate, 2),
            (self.deep_nesting, 1),
            (self.huge_body, 1),
            (self.gzip_bomb, 1),
            (self.bad_gzip, 1),
            (self.form, 1),
            (self.question, 14),
            (self.bad_question, 3),
        ]

    def draw(self) -> Shot:
        builders, weights = zip(*self.kinds, strict=True)
        return self.rng.choices(builders, weights)[0]()

    def good_event(self) -> dict[str, Any]:
        site, day = self.rng.choice(self.sites), self.rng.choice(DAYS)
        minute = self.rng.randrange(24 * 60)
        return make_event(
            site_id=site,
            path=f"/p{self.rng.randrange(40)}",
            user_id=f"u{self.rng.randrange(200)}",
            timestamp=f"{day}T{minute // 60:02}:{minute % 60:02}:00Z",
        )

    @staticmethod
    def counted(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
        return Counter((event["site_id"], event["timestamp"][:10]) for event in events)

    def event(self) -> Shot:
        event = self.good_event()
        return Shot(
            "event", "ingestion", "/event", 200, json.dumps(event).encode(), events=self.counted([event])
        )

    def batch(self) -> Shot:
        events = [self.good_event() for _ in range(self.rng.randint(2, 8))]
        body = json.dumps({"events": events}).encode()
        return Shot("batch", "ingestion", "/events", 200, body, events=self.counted(events))

    def mixed_batch(self) -> Shot:
        good = [self.good_event() for _ in range(4)]
        bad = [{**self.good_event(), "timestamp": "2025-02-30T10:00:00Z"}, {"site_id": self.sites[0]}]
        body = json.dumps(good + bad).encode()
        return Shot("mixed batch", "ingestion", "/events", 200, body, events=self.counted(good))

    def beacon(self) -> Shot:
        event = self.good_event()
        body = json.dumps(event).encode()
        return Shot("beacon", "ingestion", "/event", 200, body, "text/plain", events=self.counted([event]))

    def gzip_batch(self) -> Shot:
        events = [self.good_event() for _ in range(3)]
        body = gzip.compress(json.dumps(events).encode())
        return Shot(
            "gzip batch", "ingestion", "/events", 200, body, encoding="gzip", events=self.counted(events)
        )

    def bad_event(self, kind: str, body: bytes, status: int = 400) -> Shot:
        return Shot(kind, "ingestion", "/event", status, body)

    def malformed_json(self) -> Shot:
        return self.bad_event("malformed JSON", json.dumps(self.good_event()).encode()[:-3])

    def missing_fields(self) -> Shot:
        return self.bad_event("missing fields", json.dumps({"path": "/"}).encode())

    def bad_timestamp(self) -> Shot:
        stamp = self.rng.choice(["2025-13-45T00:00:00Z", "0001-01-01T00:00:00+01:00", "yesterday", 17])
        return self.bad_event("bad timestamp", json.dumps({**self.good_event(), "timestamp": stamp}).encode())

    def control_characters(self) -> Shot:
        return self.bad_event(
            "control characters", json.dumps({**self.good_event(), "path": "/a\x00b\x1b"}).encode()
        )

    def lone_surrogate(self) -> Shot:
        body = json.dumps(self.good_event())[:-1] + ', "user_id": "\\ud83d"}'
        return self.bad_event("lone surrogate", body.encode())

    def deep_nesting(self) -> Shot:
        # Deeper than the parser recurses, within the size limit.
        return self.bad_event("deep nesting", b"[" * 20_000 + b"]" * 20_000)

    def huge_body(self) -> Shot:
        return self.bad_event("huge body", huge_event(), 413)

    def gzip_bomb(self) -> Shot:
        return Shot("gzip bomb", "ingestion", "/events", 413, small_bomb(), encoding="gzip")

    def bad_gzip(self) -> Shot:
        return Shot("bad gzip", "ingestion", "/event", 400, b"\x1f\x8bnot really", encoding="gzip")

    def form(self) -> Shot:
        return Shot("form", "ingestion", "/event", 415, b"site_id=a", "application/x-www-form-urlencoded")

    def question(self) -> Shot:
        # Not /stats/aggregated: on a server without secondary indexes (FerretDB) it scans every
        # event, and a few a second queue up past the query time limit. The test asks it after.
        path = self.rng.choice(["/stats", "/stats/timeseries", "/stats/breakdown"])
        params = {"site_id": self.rng.choice(self.sites), "date": self.rng.choice(DAYS)}
        if path == "/stats/breakdown":
            params["by"] = self.rng.choice(["path", "event_type"])
        return Shot(f"question {path}", "reporting", path, 200, params=params)

    def bad_question(self) -> Shot:
        site = self.rng.choice(self.sites)
        params = self.rng.choice(
            [{"site_id": site, "date": "2025-02-30"}, {"site_id": site, "date": DAYS[0], "tz": "America"}, {}]
        )
        return Shot("bad question", "reporting", "/stats", 400, params=params)


@functools.cache
def huge_event() -> bytes:
    """An event of 2 MiB, sent whole before the answer is read, as ordinary clients do; built
    once and shared by every shot of its kind."""
    return json.dumps(make_event(path="/" + "x" * 2 * MIB)).encode()


@functools.cache
def small_bomb() -> bytes:
    """16 MiB once inflated, 16 KiB as sent; built once, not at each draw."""
    return gzip_bomb(16 * MIB)


def fire(shot: Shot, urls: dict[str, str], tally: Tally) -> None:
    """Send one shot and tally its answer; a refused connection or a timeout is a status 0.

    One connection per request: a client reusing a kept-alive connection at the moment the
    server closes it for idleness sees a reset that says nothing about the service.
    """
    headers = {"Content-Type": shot.content_type, "Connection": "close"}
    if shot.encoding:
        headers["Content-Encoding"] = shot.encoding
    method = "GET" if shot.body is None else "POST"
    started = time.monotonic()
    try:
        response = requests.request(
            method,
            f"{urls[shot.service]}{shot.path}",
            params=shot.params,
            data=shot.body,
            headers=headers,
            timeout=TIMEOUT,
        )
        status, body = response.status_code, response.text
    except requests.RequestException as error:
        status, body = 0, repr(error)
    with tally.lock:
        tally.latencies[shot.service].append(time.monotonic() - started)
        tally.statuses[status] += 1
        if status != shot.status:
            what = f"{shot.kind}: {status} instead of {shot.status}"
            tally.wrong[what] += 1
            tally.samples.setdefault(what, body[:300])
        elif status == 200:
            tally.accepted.update(shot.events)


def offer(mix: Mix, urls: dict[str, str], rate: float, seconds: float, tally: Tally) -> None:
    """Offer `rate` requests a second for `seconds` (open loop: each at its own time, whatever
    the answers before it), then wait for the last answers."""
    shots = [mix.draw() for _ in range(int(rate * seconds))]  # drawn ahead: the clock is for sending
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        for index, shot in enumerate(shots):
            time.sleep(max(0.0, started + index / rate - time.monotonic()))
            pool.submit(fire, shot, urls, tally)
        tally.seconds += time.monotonic() - started  # the sending, not the wait for the last answers
