"""Gunicorn entry points: `wsgi:ingestion` and `wsgi:reporting`.

Each app is made when first asked for, so a process builds (and logs the start-up warnings
of) only the service it runs.
"""

from flask import Flask

from app import create_app

SERVICES = ("ingestion", "reporting")


def __getattr__(name: str) -> Flask:
    if name not in SERVICES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    app = globals()[name] = create_app(name)  # type: ignore[arg-type]
    return app
