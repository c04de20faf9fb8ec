"""Logging for every process (app/logs.py)."""

import json
import logging
import subprocess
import sys
from pathlib import Path

from app import logs

ROOT = Path(__file__).resolve().parents[2]


def test_the_level_comes_from_the_setting_and_per_message_lines_stay_below_info():
    config = logs.dict_config("info")
    assert config["root"]["level"] == "INFO"
    for name in logs.PER_MESSAGE_LOGGERS:
        assert logging.getLevelName(config["loggers"][name]["level"]) >= logging.WARNING


def test_at_debug_the_per_message_lines_are_kept():
    config = logs.dict_config("debug")
    assert config["root"]["level"] == "DEBUG"
    assert {config["loggers"][name]["level"] for name in logs.PER_MESSAGE_LOGGERS} == {"DEBUG"}


def test_gunicorn_logs_through_it_with_the_access_log_on():
    """Read as gunicorn reads it, in a process of its own (it patches gevent in)."""
    probe = (
        "import json, runpy; config = runpy.run_path('gunicorn.conf.py');"
        "print(json.dumps([config['accesslog'], config['access_log_format'],"
        " sorted(config['logconfig_dict']['loggers'])]))"
    )
    printed = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    accesslog, access_format, loggers = json.loads(printed.stdout)
    assert accesslog == "-"
    assert access_format == logs.ACCESS_FORMAT
    assert {"gunicorn.error", "gunicorn.access"} <= set(loggers)
