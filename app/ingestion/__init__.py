"""The ingestion service: request bodies in, validated events on the queue, an answer at once."""

from app.ingestion.views import bp

__all__ = ["bp"]
