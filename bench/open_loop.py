"""Open-loop rows of `make bench-pipeline`: single `POST /event`s sent by vegeta at a fixed
arrival rate, whatever the answers' latency, as independent browsers send.

hey's clients wait for each answer before the next request, so a slow server is offered less
and its latency is understated (coordinated omission). vegeta's pacer hands each request to
a worker on its schedule, and starts another worker when all are waiting on answers (no
`-max-workers` here, so there is no cap): a slow server is offered the same rate. A latency
counts from the moment a worker takes the request (v12.12.0, `lib/attack.go`: `hit` stamps
`Timestamp` itself, then `Latency = time.Since(Timestamp)`), not from when it was due: the
pacer's sleep and the start of a worker come before it, and a pacer that fell behind (vegeta
starved of CPU) catches up by sending at once, its delay counted nowhere. The bare endpoint
runs at the same rates in the same run, so both rows carry that error. vegeta runs on the
same cores as the servers, as hey does: its own CPU is in no column.

vegeta is pinned and installed by the Makefile (`VEGETA_VERSION`) into .local/bin.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from bench.ingest import Verdict
from bench.loads import Load, percentile
from tools.processes import ROOT


class Drained(Protocol):
    """How a row's events reached `/stats` (bench/pipeline.py's Drain)."""

    @property
    def seconds(self) -> float | None: ...
    @property
    def accepted(self) -> int: ...
    @property
    def complete(self) -> bool: ...


class RowResult(Protocol):
    """A measured row (bench/pipeline.py's RowResult), as the open-loop figures read it."""

    @property
    def label(self) -> str: ...
    @property
    def load(self) -> Load: ...
    @property
    def cpu_seconds(self) -> dict[str, float]: ...
    @property
    def drain(self) -> Drained | None: ...
    @property
    def end_to_end(self) -> float: ...


LOCAL_VEGETA = ROOT / ".local" / "bin" / "vegeta"
OPEN_RATES = (50, 500, 1000)  # events (= requests) per second
# Long enough to tell a slow answer from none; a browser's beacon gives up later still.
REQUEST_TIMEOUT_SECONDS = 10
TIMEOUT_MARKS = ("Client.Timeout", "deadline exceeded", "timeout")
# The issue's targets.
LOW_RATE, HIGH_RATE, CPU_RATE = 50, 1000, 500
P50_TARGET = 0.005
LOW_P99_VS_BARE, LOW_P99_SLACK = 2.0, 0.005
HIGH_P99_TARGET = 0.025
LOW_DRAIN_SECONDS, HIGH_DRAIN_SECONDS = 1.0, 2.0
CPU_SECONDS_TARGET = 1.3  # CPU seconds per 1,000 events, every process
PROCESS_GROUPS = ("ingestion", "worker", "redis", "mongo")


def vegeta_binary() -> str:
    """The pinned vegeta the Makefile installs, else one on PATH."""
    if LOCAL_VEGETA.exists():
        return str(LOCAL_VEGETA)
    found = shutil.which("vegeta")
    if found is None:
        raise FileNotFoundError("vegeta is not installed: run `make bench-pipeline`, which installs it")
    return found


def targets_text(url: str, body_file: Path) -> str:
    """vegeta's http target format: every request posts `body_file` as JSON."""
    return f"POST {url}\nContent-Type: application/json\n@{body_file}\n"


def vegeta_argv(vegeta: str, targets: Path, rate: int, seconds: float, output: Path) -> list[str]:
    return [
        vegeta,
        "attack",
        f"-targets={targets}",
        "-format=http",
        f"-rate={rate}/1s",
        f"-duration={seconds:g}s",
        f"-timeout={REQUEST_TIMEOUT_SECONDS}s",
        "-max-body=0",  # the answers' bodies are not needed
        f"-output={output}",
    ]


def open_loop(url: str, body_file: Path, rate: int, seconds: float, run_dir: Path) -> Load:
    """POST `body_file` to `url` at `rate` requests/s for `seconds`; what it measured. One
    event a request."""
    vegeta = vegeta_binary()
    targets = run_dir / "vegeta-targets.txt"
    targets.write_text(targets_text(url, body_file))
    output = run_dir / "vegeta-results.bin"
    started = time.monotonic()
    subprocess.run(
        vegeta_argv(vegeta, targets, rate, seconds, output),
        check=True,
        capture_output=True,
        timeout=seconds + REQUEST_TIMEOUT_SECONDS + 60,
    )
    elapsed = time.monotonic() - started
    encoded = subprocess.run(
        [vegeta, "encode", "--to=json", str(output)], check=True, capture_output=True, text=True
    )
    return results_load(encoded.stdout.splitlines(), rate, elapsed)


def results_load(lines: Iterable[str], rate: int, seconds: float) -> Load:
    """vegeta's results (one JSON object a line) as a row's load: the percentiles over every
    request sent, a timed-out one at its timeout."""
    results = [json.loads(line) for line in lines if line.strip()]
    latencies = [result["latency"] / 1e9 for result in results]
    accepted = sum(1 for result in results if result["code"] == 200)
    timed_out = sum(1 for result in results if any(mark in result.get("error", "") for mark in TIMEOUT_MARKS))
    return Load(
        offered=rate,
        sent=len(results),
        accepted=accepted,
        seconds=seconds,
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        failures=len(results) - accepted,
        max=max(latencies, default=float("nan")),
        timed_out=timed_out,
    )


# -- figures and targets --------------------------------------------------------------------


def events_of(row: RowResult) -> int:
    return row.drain.accepted if row.drain else row.load.accepted


def cpu_seconds_per_thousand(row: RowResult) -> float:
    """CPU seconds per 1,000 accepted events, every process group together."""
    events = events_of(row)
    return sum(row.cpu_seconds.values()) * 1000 / events if events else float("nan")


def drain_seconds(row: RowResult) -> float | None:
    return row.drain.seconds if row.drain is not None and row.drain.complete else None


def all_served(row: RowResult) -> Verdict:
    load = row.load
    return Verdict(
        f"{row.label}: every request served",
        f"{load.accepted:,} of {load.sent:,} accepted, {load.timed_out} timed out",
        load.sent > 0 and load.accepted == load.sent,
    )


def drained_within(row: RowResult, seconds: float) -> Verdict:
    drained = drain_seconds(row)
    return Verdict(
        f"{row.label}: complete in /stats within {seconds:g} s",
        "never" if drained is None else f"{drained:.2f} s",
        drained is not None and drained <= seconds,
    )


def p50_under(row: RowResult) -> Verdict:
    return Verdict(
        f"{row.label}: p50 < {P50_TARGET * 1000:g} ms",
        f"{row.load.p50 * 1000:.1f} ms",
        row.load.p50 < P50_TARGET,
    )


def open_loop_verdicts(pairs: Mapping[int, tuple[RowResult, RowResult]]) -> list[Verdict]:
    """The issue's open-loop targets, for the rates run; `pairs` maps a rate to its bare row
    and its `POST /event` row."""
    verdicts: list[Verdict] = []
    if LOW_RATE in pairs:
        bare, row = pairs[LOW_RATE]
        bound = LOW_P99_VS_BARE * bare.load.p99 + LOW_P99_SLACK
        verdicts += [
            p50_under(row),
            Verdict(
                f"{row.label}: p99 <= {LOW_P99_VS_BARE:g} x bare's + {LOW_P99_SLACK * 1000:g} ms",
                f"{row.load.p99 * 1000:.1f} ms vs {bound * 1000:.1f} ms",
                row.load.p99 <= bound + 1e-9,
            ),
            all_served(row),
            drained_within(row, LOW_DRAIN_SECONDS),
        ]
    if CPU_RATE in pairs:
        _, row = pairs[CPU_RATE]
        cpu = cpu_seconds_per_thousand(row)
        verdicts.append(
            Verdict(
                f"{row.label}: <= {CPU_SECONDS_TARGET:g} CPU s per 1,000 events, every process",
                f"{cpu:.2f} s",
                cpu <= CPU_SECONDS_TARGET,
            )
        )
    if HIGH_RATE in pairs:
        _, row = pairs[HIGH_RATE]
        verdicts += [
            p50_under(row),
            Verdict(
                f"{row.label}: p99 < {HIGH_P99_TARGET * 1000:g} ms",
                f"{row.load.p99 * 1000:.1f} ms",
                row.load.p99 < HIGH_P99_TARGET,
            ),
            all_served(row),
            drained_within(row, HIGH_DRAIN_SECONDS),
        ]
    return verdicts


def figure(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def print_open_table(rows: Sequence[RowResult]) -> None:
    """Bare and `POST /event` rows, rate by rate."""
    print("\nopen loop (vegeta, fixed arrival rate; latency from each request's send time, ms)")
    print(
        f"{'row':<20}{'served/s':>9}{'p50':>7}{'p99':>8}{'max':>9}{'t/o':>6}{'fail':>6}"
        f"{'drain s':>9}{'e2e':>7}{'CPU s/1k':>9}" + "".join(f"{group:>8}" for group in PROCESS_GROUPS)
    )
    for row in rows:
        drained = drain_seconds(row)
        drain = "-" if row.drain is None else ("never" if drained is None else f"{drained:.2f}")
        events = events_of(row) or math.nan
        per_group = "".join(
            f"{figure(row.cpu_seconds.get(group, math.nan) * 1000 / events, '.2f'):>10}"
            for group in PROCESS_GROUPS
        )
        print(
            f"{row.label:<20}{figure(row.load.served, ',.0f'):>9}{figure(row.load.p50 * 1000, '.1f'):>7}"
            f"{figure(row.load.p99 * 1000, '.1f'):>8}{figure(row.load.max * 1000, ',.0f'):>9}"
            f"{row.load.timed_out:>6}{row.load.failures:>6}{drain:>9}{figure(row.end_to_end, ',.0f'):>7}"
            f"{figure(cpu_seconds_per_thousand(row), '.2f'):>10}{per_group}"
        )
    print(
        "t/o: requests vegeta gave up on after its timeout; fail: every request not answered 200;"
        "\nCPU s/1k: CPU seconds per 1,000 accepted events over load and drain, all processes, then"
        "\nby process tree (the bare rows: its gunicorn in the ingestion column)"
    )
