"""The ingestion service: request bodies in, validated events on the queue, an answer at once."""

from app.ingestion import plausible, tag  # their routes, on the blueprint
from app.ingestion.segment import bp as segment_bp
from app.ingestion.umami import bp as umami_bp
from app.ingestion.views import bp

__all__ = ["bp", "plausible", "segment_bp", "tag", "umami_bp"]
