"""Logging for every process, in one place: one format, the level from LOG_LEVEL.

Gunicorn takes `dict_config(...)` as its `logconfig_dict` (gunicorn.conf.py), which also
turns its access log on; the Celery worker applies it from Celery's `setup_logging` signal,
so Celery does not install its own, and Flower from `import_modules`, over tornado's
(tasks/worker.py).
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
# What the services' access log records of each request: the client (behind trusted
# proxies, the forwarded one; on ingestion only its network), request line, status, bytes,
# latency in milliseconds and the site(s) an ingestion request carried events of; never a
# body, nor a header's value. The views put the client and sites in the WSGI environ, which
# gunicorn's `{key}e` reads.
ACCESS_FORMAT = '%({analytics.logged_client}e)s "%(r)s" %(s)s %(B)s %(M)sms site=%({analytics.site}e)s'
# Celery logs each message it receives and each task that succeeds at INFO: two lines per
# message, more than the work is worth at the default level. At debug they are kept.
PER_MESSAGE_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


def dict_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` of the root logger, gunicorn's two and Celery's
    per-message ones, all writing to stderr in one format."""
    level = level.upper()
    per_message = (
        level if level == "DEBUG" else logging.getLevelName(max(logging.getLevelName(level), logging.WARNING))
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": FORMAT}, "access": {"format": "%(message)s"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
            "access": {"class": "logging.StreamHandler", "formatter": "access"},
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
            **{name: {"level": per_message} for name in PER_MESSAGE_LOGGERS},
        },
    }


def configure(level: str) -> None:
    """Apply `dict_config(level)` to this process."""
    logging.config.dictConfig(dict_config(level))
