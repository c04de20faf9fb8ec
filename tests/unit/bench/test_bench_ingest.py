"""`bench.ingest`'s arithmetic: medians over rounds, group sizes and the targets' verdicts."""

import math

from bench.ingest import (
    BARE,
    BATCH,
    EVENT,
    NAIVE,
    Result,
    Round,
    Tally,
    events_per_message,
    latency_verdict,
    median,
    median_round,
    throughput_verdicts,
)


def test_the_median_row_takes_each_figures_median_and_sums_failures():
    # requests/s, p50, p99, failures, server CPU per request, steal, events per message
    rounds = [
        Result(900.0, 0.009, 0.030, 0, 0.003, 0.2, 2.0),
        Result(1400.0, 0.006, 0.012, 2, 0.001, 0.0, 4.0),
        Result(1200.0, 0.007, 0.019, 1, 0.002, 0.1, 3.0),
    ]
    assert median(rounds) == Result(
        requests_per_second=1200.0,
        p50=0.007,
        p99=0.019,
        failures=3,
        server_cpu_per_request=0.002,
        steal=0.1,
        events_per_message=3.0,
    )


def test_the_median_round_keeps_each_concurrency_levels_rows_apart():
    def at(rate: float) -> Result:
        return Result(rate, 0.001, 0.002, 0)

    rounds = [
        Round({8: [at(100.0), at(10.0)], 64: [at(200.0), at(20.0)]}, {"fixed": at(1.0)}),
        Round({8: [at(300.0), at(30.0)], 64: [at(400.0), at(40.0)]}, {"fixed": at(3.0)}),
        Round({8: [at(500.0), at(50.0)], 64: [at(600.0), at(60.0)]}, {"fixed": at(5.0)}),
    ]
    medians = median_round(rounds)
    assert [[row.requests_per_second for row in rows] for rows in medians.results.values()] == [
        [300.0, 30.0],
        [400.0, 40.0],
    ]
    assert list(medians.results) == [8, 64]
    assert medians.fixed["fixed"].requests_per_second == 3.0


def test_events_per_message_is_the_accepted_events_over_the_messages_queued_between_tallies():
    assert events_per_message(Tally(messages=10, events=25), Tally(messages=30, events=105)) == 4.0


def test_events_per_message_is_not_a_number_where_the_products_enqueue_did_not_run():
    # The naive row queues messages but counts nothing; the bare row does neither.
    assert math.isnan(events_per_message(Tally(5, 40), Tally(105, 40)))
    assert math.isnan(events_per_message(Tally(5, 40), Tally(5, 40)))


def table(bare: float, naive: float, event: float, batches: float) -> list[Result]:
    rates = {BARE: bare, NAIVE: naive, EVENT: event, BATCH: batches}
    return [Result(rates[position], 0.001, 0.002, 0) for position in sorted(rates)]


def test_the_throughput_targets_are_met_at_their_thresholds():
    verdicts = throughput_verdicts(table(bare=1000.0, naive=300.0, event=600.0, batches=301.0))
    assert [verdict.met for verdict in verdicts] == [True, True, True]
    assert [verdict.measured for verdict in verdicts] == ["0.600x", "2.000x", "30,100 events/s"]


def test_the_throughput_targets_are_not_met_just_below_them():
    verdicts = throughput_verdicts(table(bare=1000.0, naive=300.0, event=599.0, batches=300.0))
    assert [verdict.met for verdict in verdicts] == [False, False, False]
    assert str(verdicts[0]) == "target row 3 >= 0.6x row 1: 0.599x: not met"


def test_the_latency_target_needs_a_p99_under_five_milliseconds():
    assert latency_verdict(Result(1000.0, 0.002, 0.0049, 0)).met
    assert not latency_verdict(Result(1000.0, 0.002, 0.005, 0)).met
    assert str(latency_verdict(Result(1000.0, 0.002, 0.0162, 0))) == (
        "target row 3 p99 < 5 ms at 1000 events/s offered: 16.2 ms: not met"
    )
