"""The ingestion service: request bodies in, validated events on the queue, an answer at once."""

from app.ingestion import tag  # its route, on the blueprint
from app.ingestion.views import bp

__all__ = ["bp", "tag"]
