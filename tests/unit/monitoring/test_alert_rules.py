"""The alert rules and the Grafana dashboard in docs/monitoring/: valid for Prometheus
(`promtool check rules`, built by `make .local/bin/promtool`), and written only in the
metrics the services expose."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.monitoring.scrape import scrape
from tools.factories import make_event
from tools.processes import ROOT

MONITORING = ROOT / "docs" / "monitoring"
RULES = MONITORING / "alerts.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
# Made absolute: `make` passes its relative path, and `promtool test rules` runs elsewhere.
PROMTOOL = ROOT / os.environ.get("PROMTOOL", ".local/bin/promtool")
PROJECT_METRIC = re.compile(r"\banalytics_[a-z_]+")
# A histogram's series, named after it in expressions.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def test_promtool_finds_the_alert_rules_valid():
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: `make .local/bin/promtool` builds it"
    checked = subprocess.run([str(PROMTOOL), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def expressions() -> list[str]:
    rules = [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return rules + [target["expr"] for panel in panels for target in panel["targets"]]


@pytest.fixture
def exposed(ingestion, reporting) -> set[str]:
    """Every metric name the two services expose (a request first, so labelled ones show)."""
    ingestion.post("/event", json={"site_id": "x"})
    ingestion.post("/event", json=make_event())
    names = {name for name, _ in scrape(ingestion)} | {name for name, _ in scrape(reporting)}
    return names | {name.removesuffix(suffix) for name in names for suffix in HISTOGRAM_SUFFIXES}


def test_the_alerts_and_the_dashboard_use_only_metrics_the_services_expose(exposed):
    used = {name for expression in expressions() for name in PROJECT_METRIC.findall(expression)}
    assert len(used) > 10
    assert used - exposed == set()


@pytest.mark.parametrize(
    "wanted",
    [
        "analytics_lag_seconds",
        "analytics_dead_letters",
        "analytics_queue_depth",
        "analytics_rollup_oldest_pending_age_seconds",
        "analytics_redis_used_memory_bytes",
    ],
)
def test_an_alert_watches_each_of_the_issues_signals(wanted):
    rules = [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert any(wanted in rule for rule in rules)


def promtool_test(tmp_path: Path, series: dict[str, str], alert: str, expected: list[dict]) -> None:
    """Run `promtool test rules`: `series` (name and labels -> values) for twenty minutes, and
    the alerts named `alert` firing at ten minutes are `expected`."""
    (tmp_path / "alerts.yml").write_text(RULES.read_text())
    case = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": name, "values": values} for name, values in series.items()],
                "alert_rule_test": [{"eval_time": "10m", "alertname": alert, "exp_alerts": expected}],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(case))
    run = subprocess.run(
        [str(PROMTOOL), "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_redis_memory_alert_says_the_share_used(tmp_path):
    """`a > 0 and b / a > 0.8` would keep the left operand's samples: $value in bytes."""
    maxmemory, used = 1073741824, 966367641  # 90 % of 1 GiB
    promtool_test(
        tmp_path,
        {
            "analytics_redis_maxmemory_bytes": f"{maxmemory}x20",
            "analytics_redis_used_memory_bytes": f"{used}x20",
        },
        "AnalyticsRedisMemoryHigh",
        [
            {
                "exp_labels": {"severity": "warning"},
                "exp_annotations": {
                    "summary": "Redis uses 90% of its maxmemory",
                    "description": "The queue or the rollup streams hold too much: "
                    "add workers, or raise maxmemory.",
                },
            }
        ],
    )


def test_the_pipeline_alert_names_the_store_reporting_cannot_read(tmp_path):
    promtool_test(
        tmp_path,
        {'analytics_pipeline_up{store="mongodb"}': "0x20", 'analytics_pipeline_up{store="redis"}': "1x20"},
        "AnalyticsPipelineUnreadable",
        [
            {
                "exp_labels": {"severity": "critical", "store": "mongodb"},
                "exp_annotations": {
                    "summary": "Reporting cannot read mongodb",
                    "description": "The pipeline's gauges from that store are missing, "
                    "so the alerts on them cannot fire.",
                },
            }
        ],
    )
