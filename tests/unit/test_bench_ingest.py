"""`bench.ingest --rounds N` ends with each figure's median over the rounds."""

from bench.ingest import Result, median


def test_the_median_row_takes_each_figures_median_and_sums_failures():
    # requests/s, p50, p99, failures, server CPU per request, steal
    rounds = [
        Result(900.0, 0.009, 0.030, 0, 0.003, 0.2),
        Result(1400.0, 0.006, 0.012, 2, 0.001, 0.0),
        Result(1200.0, 0.007, 0.019, 1, 0.002, 0.1),
    ]
    assert median(rounds) == Result(
        requests_per_second=1200.0, p50=0.007, p99=0.019, failures=3, server_cpu_per_request=0.002, steal=0.1
    )
