"""Logging for every process, in one place: one format, the level from LOG_LEVEL, text or
JSON from LOG_FORMAT.

Gunicorn takes `dict_config(...)` as its `logconfig_dict` (gunicorn.conf.py), which also
turns its access log on; the Celery worker applies it from Celery's `setup_logging` signal,
so Celery does not install its own, and Flower from `import_modules`, over tornado's
(tasks/worker.py).

In JSON every record carries `request_id` (app/monitoring/request_ids.py): a request's own,
or in the worker the ids of the requests whose events the task's message carries. A JSON
line has no client address: the access log leaves the client out, gunicorn's line for a
request it refuses names only the client's network (in text too), and tornado's (Flower's)
access log, which names it, is off.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

from app.web.client_address import anonymized

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
# What the services' access log records of each request: the client (behind trusted
# proxies, the forwarded one; on ingestion only its network), request line, status, bytes,
# latency in milliseconds and the site(s) an ingestion request carried events of; never a
# body, nor a header's value. The views put the client and sites in the WSGI environ, which
# gunicorn's `{key}e` reads.
ACCESS_FORMAT = '%({analytics.logged_client}e)s "%(r)s" %(s)s %(B)s %(M)sms site=%({analytics.site}e)s'
# The same without the client, for JSON lines; the request id is the answer's X-Request-ID.
JSON_ACCESS_FORMAT = '"%(r)s" %(s)s %(B)s %(M)sms site=%({analytics.site}e)s'
ACCESS_REQUEST_ID = "{x-request-id}o"
# The fields of a JSON line, beside `message` and `request_id`.
JSON_FIELDS = "%(asctime)s %(levelname)s %(process)d %(name)s %(message)s"
JSON_RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}
# Celery logs each message it receives and each task that succeeds at INFO: two lines per
# message, more than the work is worth at the default level. At debug they are kept.
PER_MESSAGE_LOGGERS = ("celery.worker.strategy", "celery.app.trace")
# Tornado's access log names the client's address.
ADDRESS_LOGGERS = ("tornado.access",)
# How gunicorn's line for a request it refuses itself begins, the peer's address next.
INVALID_REQUEST = "Invalid request from ip="
# Loggers that write message bodies or database commands, events and all, at debug: never
# below INFO, so that no level puts an event's payload in a log.
PAYLOAD_LOGGERS = ("celery.pool", "pymongo.command")


class PeerNetwork(logging.Filter):
    """Rewrites gunicorn's line for a request it refused itself (a header too large, a
    malformed request line), which names the peer's address, to name its network only, as
    ingestion's access log does."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(INVALID_REQUEST):
            # The address has no space, and gunicorn puts ": " after it (an IPv6 one has colons).
            address, separator, error = message.removeprefix(INVALID_REQUEST).partition(": ")
            record.msg, record.args = f"{INVALID_REQUEST}{anonymized(address)}{separator}{error}", None
        return True


class AccessRequestId(logging.Filter):
    """Gives an access log record the request id of its answer: gunicorn writes it once the
    request's own context is gone."""

    def filter(self, record: logging.LogRecord) -> bool:
        atoms = record.args if isinstance(record.args, dict) else {}
        record.request_id = atoms.get(ACCESS_REQUEST_ID) or getattr(record, "request_id", "")
        return True


def dict_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """A `logging.config.dictConfig` of the root logger, gunicorn's two and Celery's
    per-message ones, all writing to stderr in one format."""
    level = level.upper()
    per_message = (
        level if level == "DEBUG" else logging.getLevelName(max(logging.getLevelName(level), logging.WARNING))
    )
    json = log_format == "json"
    request_id = {"()": "app.monitoring.request_ids.RequestIdFilter"}
    formatters: dict[str, Any] = {"plain": {"format": FORMAT}, "access": {"format": "%(message)s"}}
    if json:
        line = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": JSON_RENAMED,
        }
        formatters = {"plain": line, "access": line}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": request_id,
            "access_request_id": {"()": AccessRequestId},
            "peer_network": {"()": PeerNetwork},
        },
        "formatters": formatters,
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]},
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "filters": ["request_id", "access_request_id"],
            },
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {
                "level": level,
                "handlers": ["stderr"],
                "filters": ["peer_network"],
                "propagate": False,
            },
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
            **{name: {"level": per_message} for name in PER_MESSAGE_LOGGERS},
            **{name: {"level": "INFO" if level == "DEBUG" else level} for name in PAYLOAD_LOGGERS},
            **({name: {"level": "CRITICAL", "propagate": False} for name in ADDRESS_LOGGERS} if json else {}),
        },
    }


def access_format(log_format: str) -> str:
    return JSON_ACCESS_FORMAT if log_format == "json" else ACCESS_FORMAT


def configure(level: str, log_format: str = "text") -> None:
    """Apply `dict_config(level, log_format)` to this process, Python's warnings included."""
    logging.config.dictConfig(dict_config(level, log_format))
    logging.captureWarnings(True)
