"""Batches queued as ingestion queues them (the ledger entry and the accepted counts), with no
worker running them: each test delivers them when it means to."""

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from app.queue import publish


def accept(messages: Sequence[Mapping[str, Any]]) -> str:
    """Queue a batch as ingestion does, without running it; return its id."""
    sent = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(publish, "publish", lambda messages, batch_id: sent.append(batch_id))
        publish.enqueue_events(messages)
    return sent[0]
