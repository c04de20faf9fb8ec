"""The reporting blueprint: summary statistics over stored events."""

from reporting.views import bp

__all__ = ["bp"]
