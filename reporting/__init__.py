"""The reporting blueprint: summary statistics over stored events, and their exports; and the
dashboard's."""

from reporting import exports  # noqa: F401  (registers the export routes on the blueprint)
from reporting.dashboard import bp as dashboard_bp
from reporting.views import bp

__all__ = ["bp", "dashboard_bp"]
