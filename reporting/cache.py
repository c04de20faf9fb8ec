"""Reporting answers cached in Redis for a few seconds, or longer for closed past ranges.

An answer about a range that includes today (in the asked time zone) lives at most
CACHE_LIVE_SECONDS, one about past days at most CACHE_PAST_SECONDS. And the key holds the
site's rollup generation (`app/rollups/generations.py`), so once the compactor adds new events of
the site, or a rebuild changes its rollups, no earlier answer is served again.

A key holds every value of the parameters that change an answer, while the key check and
the schemas read each one's first: so a parameter given twice is refused, lest two
questions (`site_id=a&site_id=b`, `site_id=b&site_id=a`) share one answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import redis
from flask import Response, request
from redis.exceptions import RedisError

from app.extensions import redis_store
from app.rollups import generations
from app.settings import current_settings
from app.web.errors import error_response
from reporting.periods import Period

logger = logging.getLogger(__name__)

PREFIX = "analytics:cache"
# The parameters that change an answer. Any other (a dashboard's cache buster, a bot's random
# one) is ignored by the endpoints, so it must not make a key of its own either.
ANSWER_PARAMETERS = frozenset(
    {"site_id", "date", "start", "end", "tz", "event_type", "filters", "compare"}
    | {"limit", "interval", "by", "offset"}
)
REPEATED_PARAMETER = "Give this parameter once."


def refuse_repeated_parameters() -> Response | None:
    """A `before_request` hook: a parameter that changes an answer, given more than once, is
    a 400 naming it."""
    repeated = sorted(name for name in ANSWER_PARAMETERS if len(request.args.getlist(name)) > 1)
    if not repeated:
        return None
    errors = {name: [REPEATED_PARAMETER] for name in repeated}
    return error_response(400, f"Parameters given more than once: {', '.join(repeated)}", errors)


def cache_key(client: redis.Redis, site_id: str) -> str:
    """The site's rollup generation, and the request's path and the parameters that change
    its answer, in a canonical order."""
    query = urlencode(
        sorted((name, value) for name, value in request.args.items(multi=True) if name in ANSWER_PARAMETERS)
    )
    return f"{PREFIX}:{generations.generation(client, site_id)}:{request.path}?{query}"


def ttl_for(period: Period) -> int:
    settings = current_settings()
    return settings.cache_live_seconds if period.includes_today() else settings.cache_past_seconds


def cached(period: Period, compute: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """The answer for this request, from the cache when there; and whether it was."""
    ttl = ttl_for(period)
    if ttl <= 0:
        return compute(), False
    client = redis_store.client
    try:
        key = cache_key(client, period.site_id)
        hit = client.get(key)
    except RedisError as error:
        logger.warning("reporting cache unreachable, answering uncached: %s", error)
        return compute(), False
    if hit is not None:
        body: dict[str, Any] = json.loads(hit)
        return body, True
    body = compute()
    try:
        client.set(key, json.dumps(body), ex=ttl)
    except RedisError as error:
        logger.warning("could not cache a reporting answer: %s", error)
    return body, False
