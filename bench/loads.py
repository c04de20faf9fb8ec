"""What a benchmark row's load measured, whichever generator sent it."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Load:
    """What a row's load measured (latencies in seconds)."""

    offered: float  # events/s
    sent: int  # events sent, whatever their answer
    accepted: int  # events ingestion accepted (the bare endpoint: answered 200)
    seconds: float
    p50: float
    p99: float
    failures: int  # requests not answered 200
    max: float = float("nan")  # open loop only: the slowest answer, from its send time
    timed_out: int = 0  # open loop only: requests the generator gave up waiting for

    @property
    def served(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else float("nan")


def percentile(values: Sequence[float], percent: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]
