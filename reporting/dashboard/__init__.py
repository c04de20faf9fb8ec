"""The dashboard: server-rendered pages of a site's statistics (docs/dashboard.md)."""

from reporting.dashboard.views import bp

__all__ = ["bp"]
