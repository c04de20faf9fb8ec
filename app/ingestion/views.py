"""HTTP endpoints of the ingestion service: validate events, put them on the queue, answer at once."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError
from werkzeug.exceptions import BadRequest, ServiceUnavailable

from app.access.guard import require_operator_key
from app.access.origins import request_gate
from app.access.registry import RegistryUnavailableError
from app.extensions import probe_redis, redis_store
from app.ingestion import backpressure, bots, openapi, outcomes
from app.ingestion.backpressure import QueueOverloadedError, QueueWatch
from app.ingestion.bodies import json_body
from app.ingestion.body_reader import finish_body
from app.ingestion.cors import init_cors
from app.ingestion.derivation import request_visitor
from app.ingestion.group_commit import CommitTimeoutError, GroupCommitter, OutcomeUnknownError
from app.ingestion.rate_limits import hit_limits, limit_rates
from app.ingestion.schemas import MAX_BATCH_EVENTS, Batch, BotEventError, TimeWindow, load_batch, to_message
from app.monitoring.exposition import metrics_response
from app.queue.counters import site_day
from app.queue.publish import enqueue_events
from app.queue.transport import PublishOutcomeUnknownError
from app.settings import current_settings
from app.web.errors import (
    error_response,
    handle_queue_overloaded,
    handle_queue_unavailable,
    handle_registry_unavailable,
    outcome_unknown,
)
from app.web.openapi import serve_document

# Where the access log (gunicorn's `%({analytics.site}e)s`) finds a request's sites.
SITE_ENVIRON_KEY = "analytics.site"
SITES_LOGGED = 3
ACCEPTED_ANSWER_KEY = "analytics.accepted_answer"

logger = logging.getLogger(__name__)

bp = Blueprint("ingestion", __name__)
bp.record_once(init_cors)
limit_rates(bp)
bp.after_app_request(finish_body)
bp.register_error_handler(CommitTimeoutError, handle_queue_unavailable)
bp.register_error_handler(RegistryUnavailableError, handle_registry_unavailable)
bp.register_error_handler(QueueOverloadedError, handle_queue_overloaded)
serve_document(bp, openapi.document)
# One per process: concurrent requests share an enqueue (see app/ingestion/group_commit.py).
committer = GroupCommitter(
    enqueue_events,
    max_batch_events=MAX_BATCH_EVENTS,
    outage_errors=(OperationalError, RedisError),
    unknown_errors=(PublishOutcomeUnknownError,),
)
# One per process: the latest reading of the queue's depth and Redis's memory.
watch = QueueWatch(lambda: backpressure.read(probe_redis.client))


def queue_events(messages: list[dict[str, Any]], dropped: Collection[BotEventError] = ()) -> None:
    """Return once the events are in the broker and the bots' events `dropped` are counted;
    raise if they could not be queued, or if the client's address or one of their sites is
    over its rate limit, having counted them as refused for that reason. Bots' events meet
    the same checks as the others: their answers tell nothing apart, and they cannot flood
    the counts for free."""
    with outcomes.counted(len(messages) + len(dropped)):
        admit_and_queue(messages, dropped)


def admit_and_queue(messages: list[dict[str, Any]], dropped: Collection[BotEventError]) -> None:
    site_events = Counter(message["site_id"] for message in [*messages, *(bot.message for bot in dropped)])
    sites = sorted(site_events)
    request.environ[SITE_ENVIRON_KEY] = site_label(sites)
    settings = current_settings()
    # The overload check reads memory only; a refused request neither pays for nor uses up
    # its rate limits, which cost a Redis round trip.
    reason = watch.overload(settings.queue_high_water, settings.redis_memory_high_water)
    if reason:
        raise QueueOverloadedError(reason)
    hit_limits(dict(sorted(site_events.items())))
    # An enqueue takes milliseconds, so the broker timeout is reached only when Redis stopped
    # answering; then the client must have its answer within 2 s (API.md), the rate limits'
    # own timeout included: a 503 if its events were not sent by then (never queued), else,
    # once sent, Redis's reply within one more timeout (the publish reads it within half of
    # one: celeryconfig.py), or an answer that says the outcome is unknown.
    timeout = settings.broker_timeout_seconds
    if messages:
        committer.submit(
            messages, timeout=timeout, linger=settings.group_commit_linger_ms / 1000, outcome_timeout=timeout
        )
        outcomes.accepted(len(messages))
    count_bots(dropped)


def site_label(sites: list[str]) -> str:
    """The sites of a request as the access log shows them: a few, and how many more."""
    shown = ",".join(sites[:SITES_LOGGED])
    return shown if len(sites) <= SITES_LOGGED else f"{shown},+{len(sites) - SITES_LOGGED}"


def accepted_window() -> TimeWindow:
    """The timestamps this request accepts, around the server's clock read now."""
    settings = current_settings()
    return TimeWindow.around(datetime.now(UTC), settings.event_max_age_days, settings.event_max_ahead_seconds)


@bp.post("/event")
def post_event() -> ResponseReturnValue:
    with outcomes.counted(1):
        body = json_body()
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object")
        try:
            message, dropped = to_message(body, accepted_window(), request_visitor().derive), None
        except BotEventError as bot:
            message, dropped = bot.message, bot
        gate = request_gate()
        refusal = gate(message["site_id"]) if gate else None
        if refusal:
            outcomes.refused(1, outcomes.SITE)
            return error_response(403, refusal, {"site_id": [refusal]})
    try:
        queue_events([] if dropped else [message], [dropped] if dropped else [])
    except OutcomeUnknownError:
        return outcome_unknown({"event_id": message["event_id"]})
    return accepted_answer()


def accepted_answer() -> Response:
    """`jsonify(status="accepted")`, its body serialized once per app: the most frequent
    answer, whose serialization was a measurable share of a request's CPU."""
    answer: tuple[bytes, str] | None = current_app.extensions.get(ACCEPTED_ANSWER_KEY)
    if answer is None:
        built = jsonify(status="accepted")
        answer = current_app.extensions[ACCEPTED_ANSWER_KEY] = (built.get_data(), built.content_type)
    body, content_type = answer
    return current_app.response_class(body, content_type=content_type)


@bp.post("/events")
def post_events() -> ResponseReturnValue:
    """A batch: valid events are accepted with one enqueue, invalid ones reported by index, and
    so are events refused for their site (unknown, or not sent from one of its domains)."""
    request.max_content_length = current_settings().max_batch_bytes
    batch = load_batch(
        batch_envelope(json_body()), accepted_window(), request_gate(), request_visitor().derive
    )
    count_refusals(batch)
    accepted = len(batch.messages) + len(batch.dropped)
    if not accepted and batch.refused:
        return error_response(403, "No event of the batch was admitted: see errors", batch.errors)
    if not accepted:
        return error_response(400, "No valid event in the batch", batch.errors)
    try:
        queue_events(batch.messages, list(batch.dropped.values()))
    except OutcomeUnknownError:
        return outcome_unknown({"event_ids": batch.event_ids()})
    return jsonify(status="accepted", accepted=accepted, rejected=len(batch.errors), errors=batch.errors)


def count_refusals(batch: Batch) -> None:
    """Count a batch's events refused for their site, and its invalid ones."""
    outcomes.refused(batch.refused, outcomes.SITE)
    outcomes.refused(len(batch.errors) - batch.refused, outcomes.INVALID)


def count_bots(dropped: Iterable[BotEventError]) -> None:
    """Count bots' events dropped; they are answered as accepted whether counted or not."""
    counts = Counter((*site_day(bot.message), bot.reason) for bot in dropped)
    for (_, _, reason), events in counts.items():
        outcomes.bots_dropped(events, reason)
    try:
        bots.count_dropped(redis_store.client, counts)
    except RedisError:
        logger.warning("Bots' events dropped but not counted: Redis unreachable", exc_info=True)


def batch_envelope(body: Any) -> dict[str, Any]:
    """A bare JSON array of events is the same as `{"events": [...]}`."""
    if isinstance(body, list):
        return {"events": body}
    if not isinstance(body, dict):
        raise BadRequest('Request body must be a JSON array of events or {"events": [...]}')
    return body


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """Prometheus text of every process of this service; an operator's key (AUTH_MODE=keys)."""
    return require_operator_key() or metrics_response()


@bp.get("/health")
def health() -> Response:
    """Ok when the queue can take events: Redis answers, and neither mark is passed."""
    try:
        reading = backpressure.read(probe_redis.client)
    except RedisError:
        raise ServiceUnavailable("Event queue (Redis) is unreachable") from None
    settings = current_settings()
    reason = backpressure.overload(reading, settings.queue_high_water, settings.redis_memory_high_water)
    if reason:
        return handle_queue_overloaded(QueueOverloadedError(reason))
    return jsonify(status="ok", service="ingestion-service")
