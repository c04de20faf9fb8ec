"""Gunicorn entry points: `wsgi:ingestion` and `wsgi:reporting`."""

from app import create_app

ingestion = create_app("ingestion")
reporting = create_app("reporting")
