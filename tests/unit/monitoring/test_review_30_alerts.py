"""Review of issue #30 (review-30): the alert rules evaluated by `promtool test rules`, not only
parsed by `promtool check rules`. Fails on main as of 74d12d1."""

from __future__ import annotations

import subprocess

import yaml

from tests.unit.monitoring.test_alert_rules import PROMTOOL, RULES

# Redis at 90 % of a 1 GiB maxmemory for ten minutes.
MAXMEMORY = 1073741824
USED = 966367641


def test_the_redis_memory_alert_says_the_share_used(tmp_path):
    """`a > 0 and b / a > 0.8` yields the left operand's samples, so `$value` is maxmemory in
    bytes, and the summary says "Redis uses 1.074e+11% of its maxmemory"."""
    (tmp_path / "alerts.yml").write_text(RULES.read_text())
    case = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": "analytics_redis_maxmemory_bytes", "values": f"{MAXMEMORY}x20"},
                    {"series": "analytics_redis_used_memory_bytes", "values": f"{USED}x20"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "AnalyticsRedisMemoryHigh",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning"},
                                "exp_annotations": {
                                    "summary": "Redis uses 90% of its maxmemory",
                                    "description": "The queue or the rollup streams hold too much: "
                                    "add workers, or raise maxmemory.",
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(case))
    run = subprocess.run(
        [str(PROMTOOL), "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
