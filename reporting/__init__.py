"""The reporting blueprint: summary statistics over stored events, and their exports."""

from reporting import exports  # noqa: F401  (registers the export routes on the blueprint)
from reporting.views import bp

__all__ = ["bp"]
