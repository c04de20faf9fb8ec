"""The ingestion service: request bodies in, validated events on the queue, an answer at once."""

from app.ingestion import plausible, tag  # their routes, on the blueprint
from app.ingestion.views import bp

__all__ = ["bp", "plausible", "tag"]
