"""Importing events: exported or historical events, read line by line, checked as a client's
event is (but for the window of live timestamps), and sent through the queue and the workers
in batches, like any other.

Each event keeps its `event_id`: the worker stores one event per site and event id, so an
import run twice (or cut short and run again) counts each event once. That holds only while
the store still holds the event: a timestamp older than what retention keeps is refused
(`ImportWindow`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from kombu.exceptions import OperationalError
from marshmallow import ValidationError
from pymongo.database import Database
from redis.exceptions import RedisError

from app.extensions import mongo
from app.ingestion import backpressure
from app.ingestion.backpressure import QueueOverloadedError
from app.ingestion.schemas import MAX_BATCH_EVENTS
from app.queue.transport import PublishOutcomeUnknownError
from app.settings import Settings, current_settings
from app.store import expired, sites
from app.transfer.lines import import_message

# The errors an import reports line by line; beyond, it only counts them.
MAX_REPORTED_ERRORS = 100


@dataclass(frozen=True)
class ImportWindow:
    """The timestamps an import takes: none older than what the store may have deleted (the
    retention mark, or EVENT_RETENTION_DAYS back from now), none further ahead than live
    events (EVENT_MAX_AHEAD_SECONDS)."""

    earliest: datetime | None
    latest: datetime
    why_earliest: str = ""

    @classmethod
    def of(
        cls, now: datetime, expired_before: datetime | None, retention_days: int, max_ahead_seconds: int
    ) -> ImportWindow:
        bounds = []
        if expired_before is not None:
            bounds.append((expired_before, "retention has deleted raw events before it"))
        if retention_days > 0:
            bounds.append(
                (now - timedelta(days=retention_days), f"EVENT_RETENTION_DAYS={retention_days} deletes them")
            )
        earliest, why = max(bounds, key=lambda bound: bound[0]) if bounds else (None, "")
        return cls(earliest, now + timedelta(seconds=max_ahead_seconds), why)

    def problem(self, moment: datetime) -> str | None:
        """Why an event of this time cannot be imported, or None."""
        if self.earliest is not None and moment < self.earliest:
            return (
                f"Older than {self.earliest.isoformat(timespec='seconds')}: {self.why_earliest}, so the "
                "store could not recognise the event if it were imported again, and would count it twice."
            )
        if moment > self.latest:
            return f"After {self.latest.isoformat(timespec='seconds')}: ahead of the server's time."
        return None


@dataclass
class ImportReport:
    """What an import did: events sent, lines refused (the first MAX_REPORTED_ERRORS with their
    messages, by line number), and the last line whose event was sent."""

    sent: int = 0
    refused: int = 0
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)
    sent_through_line: int = 0

    def refuse(self, line: int, messages: dict[str, Any]) -> None:
        self.refused += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors[line] = messages

    def body(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "refused": self.refused,
            "errors": {str(n): e for n, e in self.errors.items()},
        }


class ImportStoppedError(Exception):
    """The queue did not take a batch: what was sent before is in `report`."""

    def __init__(self, report: ImportReport, cause: Exception) -> None:
        super().__init__(str(cause))
        self.report = report


class BadLine:
    """A line that is no JSON."""

    def __init__(self, message: str) -> None:
        self.message = message


def ndjson_items(lines: Iterable[bytes | str]) -> Iterator[tuple[int, Any]]:
    """The items of NDJSON lines with their line numbers (from 1); blank lines are skipped, a
    line that is no JSON gives a `BadLine`."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except (ValueError, RecursionError) as error:
            yield number, BadLine(f"Not JSON: {error}")


def body_items(data: bytes) -> Iterator[tuple[int, Any]]:
    """A request body's items: a JSON array (each item numbered from 1, as a line), or NDJSON."""
    if data.lstrip()[:1] == b"[":
        try:
            items = json.loads(data)
        except (ValueError, RecursionError) as error:
            raise ValidationError(f"Not a JSON array: {error}", "body") from None
        return enumerate(items, start=1)
    return ndjson_items(data.splitlines())


def import_events(
    items: Iterable[tuple[int, Any]],
    send: Callable[[list[dict[str, Any]]], None],
    window: ImportWindow,
    admit: Callable[[str], str | None] = lambda site_id: None,
    site_id: str | None = None,
    batch_size: int = MAX_BATCH_EVENTS,
    failures: tuple[type[Exception], ...] = (),
) -> ImportReport:
    """Check each item as an event (in `site_id` when given) and `send` the valid ones, a batch
    of `batch_size` at a time; `admit` gives why a site is refused (None: admitted). Raises
    ImportStoppedError, with what was sent, when `send` fails with one of `failures`."""
    report = ImportReport()
    batch: list[dict[str, Any]] = []
    last_line = 0

    def flush() -> None:
        try:
            send(batch)
        except failures as error:
            raise ImportStoppedError(report, error) from error
        report.sent += len(batch)
        report.sent_through_line = last_line
        batch.clear()

    for line, item in items:
        if isinstance(item, BadLine):
            report.refuse(line, {"_line": [item.message]})
            continue
        try:
            message = import_message(item, site_id)
        except ValidationError as error:
            report.refuse(line, error.normalized_messages())
            continue
        too_old_or_new = window.problem(datetime.fromisoformat(message["timestamp"]))
        refused_site = admit(message["site_id"])
        if too_old_or_new or refused_site:
            report.refuse(
                line, {"timestamp": [too_old_or_new]} if too_old_or_new else {"site_id": [refused_site]}
            )
            continue
        batch.append(message)
        last_line = line
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return report


def import_now(
    items: Iterable[tuple[int, Any]], send: Callable[[list[dict[str, Any]]], None], site_id: str | None
) -> ImportReport:
    """`import_events` in the app's store, with its settings, the window of now, stopped by a
    queue failure."""
    settings = current_settings()
    return import_events(
        items,
        send,
        window_now(mongo.db, settings),
        site_admission(mongo.db, settings),
        site_id,
        failures=QUEUE_FAILURES,
    )


def window_now(db: Database[Any], settings: Settings) -> ImportWindow:
    """The import window now, from the store's retention mark and the settings."""
    return ImportWindow.of(
        datetime.now(UTC),
        expired.expired_before(db),
        settings.event_retention_days,
        settings.event_max_ahead_seconds,
    )


def site_admission(db: Database[Any], settings: Settings) -> Callable[[str], str | None]:
    """Why a site's events cannot be imported (None: they can): with AUTH_MODE=keys, only a
    registered site's, as ingestion takes."""
    if settings.auth_mode == "open":
        return lambda site_id: None
    registered = set(sites.registered_sites(db))

    def admit(site_id: str) -> str | None:
        return (
            None if site_id in registered else f"Unknown site {site_id}: register it with `flask site add`."
        )

    return admit


def queue_overload(client: redis.Redis, settings: Settings) -> str | None:
    """Why the queue must take no more events now (the marks ingestion keeps to), or None."""
    return backpressure.overload(
        backpressure.read(client), settings.queue_high_water, settings.redis_memory_high_water
    )


# What stops an import's batch from being queued: its outcome is known (a 503's causes), or not.
QUEUE_FAILURES = (OperationalError, RedisError, PublishOutcomeUnknownError, QueueOverloadedError)
