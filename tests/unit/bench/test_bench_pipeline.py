"""`make bench-pipeline`'s arithmetic and verdicts, without servers: each target at and just
past its threshold, the queue samples' summary, the end-to-end rate, the soak's rules, and
the import rows' events."""

from datetime import UTC, datetime, timedelta

import pytest

from app.ingestion.schemas import to_message
from bench.pipeline import (
    Drain,
    Load,
    QueueSummary,
    RowResult,
    Sample,
    batch_verdict,
    data_sizes,
    end_to_end_rate,
    files_bounded_verdict,
    fixed_rate_verdicts,
    flat_out_verdict,
    hey_load,
    import_batches,
    soak_rate_verdict,
    summarise_samples,
    thin,
    wide_import_verdict,
)

NOW = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)


def load(
    offered: float = 1000.0, accepted: int = 1000, seconds: float = 1.0, p99: float = 0.010, sent: int = 1000
) -> Load:
    return Load(offered, sent, accepted, seconds, p50=0.005, p99=p99, failures=0)


def row(
    label: str = "row",
    *,
    the_load: Load | None = None,
    drain_seconds: float | None = 1.0,
    counted: int = 1000,
    accepted: int = 1000,
    max_depth: int = 0,
    cpu: dict[str, float] | None = None,
) -> RowResult:
    return RowResult(
        label,
        the_load or load(accepted=accepted),
        cpu or {},
        QueueSummary(max_depth, 0, 0, 0),
        Drain(drain_seconds, counted, accepted),
    )


def reference(served: float = 1000.0, p99: float = 0.005) -> RowResult:
    return RowResult("bare", load(offered=served, accepted=int(served), p99=p99), {})


def row_with_end_to_end(rate: float, drained: bool = True) -> RowResult:
    """A row whose 10-second load and drain carried `rate` events/s end to end."""
    events = int(rate * 10)
    return row(
        the_load=load(accepted=events, seconds=4.0, sent=events),
        drain_seconds=6.0 if drained else None,
        counted=events,
        accepted=events,
    )


# -- queue samples and rates ----------------------------------------------------------------


def test_the_queue_summary_takes_the_max_over_load_and_drain_and_the_last_value_by_the_loads_end():
    samples = [
        Sample(0.0, 0, 0),
        Sample(0.5, 40, 3),
        Sample(1.0, 25, 9),
        Sample(1.5, 90, 2),
        Sample(2.0, 0, 0),
    ]
    assert summarise_samples(samples, load_seconds=1.2) == QueueSummary(
        max_depth=90, end_depth=25, max_backlog=9, end_backlog=9
    )


def test_a_sample_taken_exactly_at_the_loads_end_is_its_end_value():
    samples = [Sample(0.0, 5, 1), Sample(1.0, 7, 2), Sample(1.01, 8, 3)]
    assert summarise_samples(samples, load_seconds=1.0).end_depth == 7


def test_no_samples_summarise_to_zeros_and_a_late_first_sample_stands_for_the_end():
    assert summarise_samples([], load_seconds=1.0) == QueueSummary(0, 0, 0, 0)
    assert summarise_samples([Sample(2.0, 4, 1)], load_seconds=1.0) == QueueSummary(4, 4, 1, 1)


def test_thinning_keeps_the_first_and_last_samples_and_at_most_the_asked_count():
    samples = [Sample(float(n), n, 0) for n in range(100)]
    thinned = thin(samples, points=12)
    assert len(thinned) == 12
    assert (thinned[0].depth, thinned[-1].depth) == (0, 99)
    assert thin(samples[:5], points=12) == samples[:5]


def test_the_end_to_end_rate_divides_the_events_by_load_plus_drain_seconds():
    assert end_to_end_rate(30_000, 10.0, 5.0) == 2000.0
    assert end_to_end_rate(30_000, 10.0, 0.0) == 3000.0


def test_a_row_never_counted_in_full_has_no_end_to_end_rate():
    assert end_to_end_rate(30_000, 10.0, None) != end_to_end_rate(30_000, 10.0, None)  # NaN
    assert row(drain_seconds=None).end_to_end != row(drain_seconds=None).end_to_end


def test_a_rows_end_to_end_rate_and_cpu_count_the_events_accepted_by_the_drains_end():
    result = row(
        the_load=load(accepted=900, seconds=4.0), drain_seconds=1.0, accepted=1000, cpu={"worker": 2.5}
    )
    assert result.end_to_end == 200.0
    assert result.cpu_ms_per_thousand("worker") == 2500.0


# -- the targets ----------------------------------------------------------------------------


def met(verdicts):
    return [verdict.met for verdict in verdicts]


def test_single_events_at_the_fixed_rate_meet_each_target_exactly_at_its_threshold():
    at_threshold = row(
        the_load=load(offered=1000.0, accepted=980, p99=0.010), drain_seconds=2.0, counted=980, accepted=980
    )
    assert met(fixed_rate_verdicts(at_threshold, reference(p99=0.005))) == [True, True, True]


def test_single_events_at_the_fixed_rate_miss_each_target_just_past_its_threshold():
    past = row(
        the_load=load(offered=1000.0, accepted=979, p99=0.0101), drain_seconds=2.01, counted=979, accepted=979
    )
    assert met(fixed_rate_verdicts(past, reference(p99=0.005))) == [False, False, False]


def test_stats_counting_fewer_or_more_events_than_accepted_misses_the_freshness_target():
    short = row(drain_seconds=None, counted=970, accepted=980)
    over = row(drain_seconds=0.5, counted=981, accepted=980)
    assert met(fixed_rate_verdicts(short, reference()))[2] is False
    assert met(fixed_rate_verdicts(over, reference()))[2] is False


def test_flat_out_single_events_need_half_the_bare_endpoints_rate_end_to_end():
    assert flat_out_verdict(row_with_end_to_end(500.0), reference(served=1000.0)).met
    assert not flat_out_verdict(row_with_end_to_end(499.9), reference(served=1000.0)).met


def test_batches_need_twenty_thousand_events_a_second_end_to_end_and_a_drained_queue():
    assert batch_verdict(row_with_end_to_end(20_000.0)).met
    assert not batch_verdict(row_with_end_to_end(19_999.9)).met
    assert not batch_verdict(row_with_end_to_end(50_000.0, drained=False)).met


def test_the_batch_verdict_prints_the_largest_queue():
    assert "max queue 1,234 messages" in batch_verdict(row(max_depth=1234)).measured


def test_a_wide_import_needs_half_the_narrow_ones_rate_drained_and_exact():
    narrow = row_with_end_to_end(1000.0)
    assert wide_import_verdict(row_with_end_to_end(500.0), narrow).met
    assert not wide_import_verdict(row_with_end_to_end(499.9), narrow).met
    assert not wide_import_verdict(row_with_end_to_end(2000.0, drained=False), narrow).met


def test_a_wide_import_that_lost_events_on_the_way_in_is_not_exact():
    # /stats agrees with the accepted counter, but 10 of the events sent were never accepted.
    lossy = row(the_load=load(accepted=990, sent=1000), counted=990, accepted=990)
    verdict = wide_import_verdict(lossy, row_with_end_to_end(10.0))
    assert not verdict.met
    assert "not exact" in verdict.measured


# -- the soak -------------------------------------------------------------------------------


def test_the_soak_rate_holds_within_twenty_percent_of_the_first_minute_either_way():
    assert soak_rate_verdict([1000.0, 950.0, 800.0]).met
    assert soak_rate_verdict([1000.0, 1200.0]).met
    assert not soak_rate_verdict([1000.0, 799.0]).met
    assert not soak_rate_verdict([1000.0, 1201.0]).met


def test_the_soak_rules_need_two_minutes():
    assert not soak_rate_verdict([1000.0]).met
    assert "at least 2 minutes" in files_bounded_verdict([4096]).measured


def test_the_wal_is_bounded_up_to_twenty_percent_above_the_earlier_minutes_largest():
    assert files_bounded_verdict([1000, 800, 1200]).met
    assert files_bounded_verdict([4000, 1000, 1000]).met  # shrank after a checkpoint
    assert not files_bounded_verdict([1000, 800, 1201]).met
    assert files_bounded_verdict([0, 0]).met


def test_the_data_directory_size_counts_every_file_and_the_wal_alone(tmp_path):
    (tmp_path / "bench.sqlite").write_bytes(b"x" * 100)
    (tmp_path / "bench.sqlite-wal").write_bytes(b"x" * 30)
    (tmp_path / "bench.sqlite-shm").write_bytes(b"x" * 7)
    assert data_sizes(tmp_path) == (137, 30)


# -- the import rows' events ----------------------------------------------------------------


@pytest.fixture(scope="module")
def wide_import():
    sites = [f"site-{n}" for n in range(20)]
    first = NOW - timedelta(days=29)
    return sites, first, import_batches(12_345, sites, first, NOW, seed=5)


def test_a_wide_import_comes_in_batches_of_500_the_last_one_holding_the_rest(wide_import):
    _, _, batches = wide_import
    assert [len(batch) for batch in batches] == [500] * 24 + [345]


def test_a_wide_import_spreads_its_events_over_twenty_sites_and_thirty_utc_days(wide_import):
    sites, _, batches = wide_import
    events = [event for batch in batches for event in batch]
    assert {event["site_id"] for event in events} == set(sites)
    assert {event["site_id"] for event in batches[0]} == set(sites)  # every batch is wide
    days = {datetime.fromisoformat(event["timestamp"]).date() for event in events}
    assert len(days) == 30
    assert min(days) == (NOW - timedelta(days=29)).date()
    assert max(days) == NOW.date()


def test_a_wide_imports_timestamps_stay_within_its_window(wide_import):
    _, first, batches = wide_import
    stamps = [datetime.fromisoformat(event["timestamp"]) for batch in batches for event in batch]
    assert first <= min(stamps)
    assert max(stamps) <= NOW


def test_import_events_are_valid_and_carry_unique_ids_so_a_resent_batch_counts_once(wide_import):
    _, _, batches = wide_import
    events = [event for batch in batches for event in batch]
    assert len({event["event_id"] for event in events}) == len(events)
    assert all(to_message(event)["event_id"] == event["event_id"] for event in events[:500])


def test_the_same_seed_makes_the_same_import():
    first = NOW - timedelta(hours=15)
    assert import_batches(600, ["a"], first, NOW, seed=6) == import_batches(600, ["a"], first, NOW, seed=6)


# -- hey's figures --------------------------------------------------------------------------

HEY_OUTPUT = """
Summary:
  Total:        10.0031 secs
  Requests/sec: 812.3456

Latency distribution:
  50% in 0.0043 secs
  99% in 0.0210 secs

Status code distribution:
  [200] 8000 responses
  [503] 120 responses
"""


def test_a_fixed_rate_hey_run_offers_the_asked_rate_and_accepts_its_200s_events():
    result = hey_load(HEY_OUTPUT, events_per_request=100, asked_rate=1000, seconds=10.0)
    assert (result.offered, result.sent, result.accepted, result.failures) == (100_000, 812_000, 800_000, 120)
    assert (result.p50, result.p99, result.served) == (0.0043, 0.0210, 80_000.0)


def test_a_flat_out_hey_run_offers_what_hey_sent():
    assert hey_load(HEY_OUTPUT, events_per_request=1, asked_rate=0, seconds=10.0).offered == 812.3456
