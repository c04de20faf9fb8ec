"""Sending events to a running ingestion service over HTTP, as a server does: `POST /events`
in batches, waiting out its 429 and 503 answers, and sending a batch again (with the same
event ids, so counted once) when its outcome is unknown."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from app.ingestion.schemas import MAX_BATCH_EVENTS

# Answers after which the same batch is sent again: rate limited, overloaded, outcome unknown.
RETRIED = (429, 503, 504)
DEFAULT_WAIT_SECONDS = 1.0
MAX_ATTEMPTS = 120
TIMEOUT_SECONDS = 30


class SendError(Exception):
    """Ingestion refused a batch for good, or never took it."""


@dataclass
class Sent:
    """What ingestion answered: events accepted, events it refused, and the first refusals."""

    accepted: int = 0
    rejected: int = 0
    errors: list[Any] = field(default_factory=list)


def send_events(
    url: str,
    events: Iterable[dict[str, Any]],
    server_key: str | None = None,
    batch_size: int = MAX_BATCH_EVENTS,
    sleep: Callable[[float], None] = time.sleep,
) -> Sent:
    """POST `events` to `url`/events, `batch_size` at a time, as a server (no Origin), with
    `server_key` as its bearer key when given."""
    headers = {"Content-Type": "application/json"}
    if server_key:
        headers["Authorization"] = f"Bearer {server_key}"
    sent = Sent()
    pending = iter(events)
    while batch := list(islice(pending, batch_size)):
        status, body = _post(f"{url.rstrip('/')}/events", json.dumps(batch).encode(), headers, sleep)
        if status == 200:
            sent.accepted += body["accepted"]
            sent.rejected += body["rejected"]
            sent.errors.extend(list(body["errors"].values())[: 5 - len(sent.errors)])
        elif status == 400 and "errors" in body:  # not one valid event in the batch
            sent.rejected += len(batch)
            sent.errors.extend(list(body["errors"].values())[: 5 - len(sent.errors)])
        else:
            raise SendError(f"{status}: {body.get('message', body)} (after {sent.accepted} events accepted)")
    return sent


def _post(
    url: str, data: bytes, headers: dict[str, str], sleep: Callable[[float], None]
) -> tuple[int, dict[str, Any]]:
    for _ in range(MAX_ATTEMPTS):
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            if error.code not in RETRIED:
                return error.code, _json(error.read())
            sleep(float(error.headers.get("Retry-After") or DEFAULT_WAIT_SECONDS))
        except (urllib.error.URLError, TimeoutError) as error:
            raise SendError(f"ingestion at {url} did not answer: {error}") from None
    raise SendError(f"ingestion at {url} kept refusing: gave up after {MAX_ATTEMPTS} attempts")


def _json(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError:
        return {"message": data.decode(errors="replace")[:200]}
    return body if isinstance(body, dict) else {"message": str(body)[:200]}
