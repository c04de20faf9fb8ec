"""The open-loop rows' arithmetic, without servers: vegeta's results read into a row's load
(latency percentiles over every request sent, timeouts apart from other failures), and the
issue's open-loop targets at and just past their thresholds."""

import json

import pytest

from bench.open_loop import (
    OPEN_RATES,
    cpu_seconds_per_thousand,
    open_loop_verdicts,
    results_load,
    targets_text,
    vegeta_argv,
)
from bench.pipeline import Drain, Load, QueueSummary, RowResult

TIMEOUT = 'Post "http://127.0.0.1:1/event": context deadline exceeded (Client.Timeout exceeded)'


def result(code: int, latency_ms: float, error: str = "") -> str:
    return json.dumps({"code": code, "latency": int(latency_ms * 1_000_000), "error": error, "seq": 0})


def test_every_request_counts_in_the_percentiles_and_timeouts_apart_from_refusals():
    lines = [result(200, ms) for ms in range(1, 98)] + [result(503, 2.0), result(0, 10_000, TIMEOUT)]
    lines.append(result(0, 3.0, "connection refused"))
    load = results_load(lines, rate=100, seconds=1.0)
    assert (load.offered, load.sent, load.accepted) == (100, 100, 97)
    assert load.failures == 3
    assert load.timed_out == 1
    assert load.max == pytest.approx(10.0)
    assert load.p50 == pytest.approx(0.048, abs=0.002)
    assert 0.097 <= load.p99 <= 10.0


def test_the_targets_file_posts_the_body_as_json(tmp_path):
    body = tmp_path / "body.json"
    text = targets_text("http://127.0.0.1:5/event", body)
    assert text.splitlines() == [
        "POST http://127.0.0.1:5/event",
        "Content-Type: application/json",
        f"@{body}",
    ]


def test_vegeta_sends_at_a_fixed_rate_and_keeps_no_bodies(tmp_path):
    argv = vegeta_argv("vegeta", tmp_path / "targets", 500, 15.0, tmp_path / "out.bin")
    assert argv[:2] == ["vegeta", "attack"]
    assert "-rate=500/1s" in argv
    assert "-duration=15s" in argv
    assert "-max-body=0" in argv


def open_row(
    label: str, p50: float, p99: float, drain: float | None = 0.5, accepted: int = 1000
) -> RowResult:
    load = Load(1000, 1000, accepted, 1.0, p50=p50, p99=p99, failures=1000 - accepted)
    return RowResult(
        label,
        load,
        {"ingestion": 0.5, "worker": 0.3},
        QueueSummary(0, 0, 0, 0),
        Drain(drain, accepted, accepted),
    )


def bare_row(p99: float) -> RowResult:
    return RowResult("bare", Load(1000, 1000, 1000, 1.0, p50=0.001, p99=p99, failures=0), {})


def test_cpu_per_thousand_sums_every_process():
    assert cpu_seconds_per_thousand(open_row("e", 0.001, 0.002)) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("p50", "p99", "met"),
    [(0.00499, 0.00900, True), (0.00501, 0.00900, False), (0.00499, 0.00901, False)],
)
def test_at_the_low_rate_p50_under_5_ms_and_p99_within_twice_bare_plus_5(p50, p99, met):
    verdicts = open_loop_verdicts({50: (bare_row(0.002), open_row("e50", p50, p99))})
    latency = [verdict for verdict in verdicts if "p50" in verdict.target or "p99" in verdict.target]
    assert len(latency) == 2
    assert all(verdict.met for verdict in latency) is met


@pytest.mark.parametrize(("drain", "met"), [(1.0, True), (1.01, False), (None, False)])
def test_at_the_low_rate_stats_are_complete_within_a_second(drain, met):
    verdicts = open_loop_verdicts({50: (bare_row(0.002), open_row("e50", 0.001, 0.002, drain))})
    assert [verdict.met for verdict in verdicts if "/stats" in verdict.target] == [met]


@pytest.mark.parametrize(
    ("p99", "accepted", "met"), [(0.0249, 1000, True), (0.025, 1000, False), (0.01, 999, False)]
)
def test_at_the_high_rate_p99_under_25_ms_and_all_served(p99, accepted, met):
    verdicts = open_loop_verdicts({1000: (bare_row(0.002), open_row("e1000", 0.001, p99, accepted=accepted))})
    assert all(verdict.met for verdict in verdicts if "drain" not in verdict.target) is met


def test_the_rates_are_the_issues():
    assert OPEN_RATES == (50, 500, 1000)
