"""The dashboard's arithmetic: the change of a figure, the UTC days a period touches (where
bots are counted). The period before is `compare=previous_period`'s (test_comparison.py)."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from reporting.dashboard.panels import Figure, utc_days
from reporting.periods import Period


@pytest.mark.parametrize(("value", "previous", "change"), [(150, 100, 50.0), (50, 100, -50.0), (7, 0, None)])
def test_a_figures_change_is_in_percent_and_none_from_nothing(value, previous, change):
    assert Figure("events", "Events", value, previous).change == change


@pytest.mark.parametrize(
    ("zone", "days"),
    [
        ("UTC", ["2026-03-01", "2026-03-02"]),
        ("Asia/Tokyo", ["2026-02-28", "2026-03-01", "2026-03-02"]),  # UTC+9: from 15:00 the day before
        ("America/New_York", ["2026-03-01", "2026-03-02", "2026-03-03"]),  # UTC-5: until 05:00 after
    ],
)
def test_bots_are_read_for_every_utc_day_the_period_touches(zone, days):
    assert utc_days(Period("site", date(2026, 3, 1), date(2026, 3, 2), ZoneInfo(zone))) == days
