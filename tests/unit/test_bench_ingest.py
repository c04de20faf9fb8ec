"""`bench.ingest --rounds N` ends with each figure's median over the rounds."""

from bench.ingest import Result, median


def test_the_median_row_takes_each_figures_median_and_sums_failures():
    rounds = [
        Result(
            requests_per_second=900.0,
            p50=0.009,
            p99=0.030,
            failures=0,
            server_cpu_per_request=0.003,
            steal=0.2,
        ),
        Result(
            requests_per_second=1400.0,
            p50=0.006,
            p99=0.012,
            failures=2,
            server_cpu_per_request=0.001,
            steal=0.0,
        ),
        Result(
            requests_per_second=1200.0,
            p50=0.007,
            p99=0.019,
            failures=1,
            server_cpu_per_request=0.002,
            steal=0.1,
        ),
    ]
    assert median(rounds) == Result(
        requests_per_second=1200.0, p50=0.007, p99=0.019, failures=3, server_cpu_per_request=0.002, steal=0.1
    )
