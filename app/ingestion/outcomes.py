"""Ingestion's events counted by outcome (app/monitoring/metrics.py): accepted, or refused
and why. The reasons are the answers a client gets; docs/operations.md lists them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import request
from kombu.exceptions import OperationalError
from marshmallow import ValidationError
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from app.access.registry import RegistryUnavailableError
from app.ingestion.backpressure import QueueOverloadedError
from app.ingestion.group_commit import CommitTimeoutError, OutcomeUnknownError
from app.ingestion.rate_limits import RateLimitedError
from app.monitoring.metrics import BOTS_DROPPED, EVENTS_ACCEPTED, EVENTS_REFUSED

INVALID = "invalid"
# Unknown site, or sent from a page of none of its domains.
SITE = "site"
# The queue above a high-water mark (503).
OVERLOADED = "overloaded"
RATE_LIMITED = "rate_limited"
# Redis away or not answering in time (503): not queued.
QUEUE_UNAVAILABLE = "queue_unavailable"
# Sent, but Redis's reply not heard (504): maybe queued; a retry with the same ids is safe.
UNCONFIRMED = "unconfirmed"
REGISTRY_UNAVAILABLE = "registry_unavailable"
OTHER = "other"

REASONS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    ((ValidationError, HTTPException), INVALID),
    (QueueOverloadedError, OVERLOADED),
    (RateLimitedError, RATE_LIMITED),
    (OutcomeUnknownError, UNCONFIRMED),
    ((CommitTimeoutError, OperationalError, RedisError), QUEUE_UNAVAILABLE),
    (RegistryUnavailableError, REGISTRY_UNAVAILABLE),
)


def reason_of(error: BaseException) -> str:
    return next((reason for kinds, reason in REASONS if isinstance(error, kinds)), OTHER)


def accepted(events: int) -> None:
    """Count `events` as accepted by this request's endpoint."""
    EVENTS_ACCEPTED.labels(request.url_rule.rule if request.url_rule else OTHER).inc(events)


def refused(events: int, reason: str) -> None:
    if events:
        EVENTS_REFUSED.labels(reason).inc(events)


def bots_dropped(events: int, reason: str) -> None:
    BOTS_DROPPED.labels(reason).inc(events)


@contextmanager
def counted(events: int) -> Iterator[None]:
    """Count `events` as refused, for the reason its error gives, if the block raises."""
    try:
        yield
    except Exception as error:
        refused(events, reason_of(error))
        raise
