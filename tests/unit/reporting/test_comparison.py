"""`compare=previous_period|year_over_year` on `/stats`, `/stats/timeseries` and
`/stats/breakdown`: the other period's days, its figures equal to the plain answer about it,
and the change in percent."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from reporting.comparison import aligned_changes, change, previous_period, year_over_year
from reporting.filters import parse
from reporting.openapi import BreakdownSchema, StatsSchema, TimeseriesSchema
from reporting.periods import Period
from tests.unit.reporting.test_filters import SITE, traffic

BERLIN = ZoneInfo("Europe/Berlin")
PERIOD = f"site_id={SITE}&start=2025-11-14&end=2025-11-15"
# The other periods of PERIOD, each with its own traffic.
OTHER_DAYS = {"previous_period": ("2025-11-12", "2025-11-13"), "year_over_year": ("2024-11-14", "2024-11-15")}
FIGURES = ("total_views", "unique_users", "top_paths", "other_paths", "other_event_types")


def test_the_previous_period_has_as_many_days_just_before_with_the_same_question():
    filters = parse("source==Google")
    period = Period("site", date(2026, 3, 1), date(2026, 3, 7), BERLIN, "signup", filters)
    before = previous_period(period)
    assert (before.first_day, before.last_day) == (date(2026, 2, 22), date(2026, 2, 28))
    assert (before.site_id, before.tz, before.event_type, before.filters) == (
        "site",
        BERLIN,
        "signup",
        filters,
    )


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        (date(2026, 3, 1), date(2026, 3, 7), (date(2025, 3, 1), date(2025, 3, 7))),
        (date(2024, 2, 29), date(2024, 3, 1), (date(2023, 2, 28), date(2023, 3, 1))),
        (date(2024, 2, 1), date(2024, 2, 29), (date(2023, 2, 1), date(2023, 2, 28))),
        (date(2025, 2, 28), date(2025, 3, 1), (date(2024, 2, 28), date(2024, 3, 1))),
    ],
)
def test_year_over_year_is_the_same_dates_a_year_earlier_29_february_the_28th(first, last, expected):
    before = year_over_year(Period("site", first, last, BERLIN))
    assert (before.first_day, before.last_day) == expected


@pytest.mark.parametrize(
    ("value", "previous", "expected"),
    [
        (150, 100, 50.0),
        (50, 100, -50.0),
        (0, 5, -100.0),
        (1, 3, -66.7),
        (3, 1, 200.0),
        (7, 0, None),
        (0, 0, None),
    ],
)
def test_a_change_is_in_percent_to_one_decimal_and_none_from_nothing(value, previous, expected):
    assert change(value, previous) == expected


def test_a_series_change_pairs_points_by_position_and_is_none_past_the_other_periods_end():
    now = [{"views": 2}, {"views": 3}, {"views": 4}]
    then = [{"views": 1}, {"views": 0}]
    assert aligned_changes(now, then, ["views"]) == [{"views": 100.0}, {"views": None}, None]


@pytest.fixture
def stored(store):
    """Different traffic in PERIOD and in each of its other periods."""
    store(traffic(seed=1))
    for seed, (first, last) in enumerate(OTHER_DAYS.values(), start=2):
        days = {"2025-11-14": first, "2025-11-15": last}
        events = traffic(count=120, seed=seed)
        for event in events:
            day = event["timestamp"][:10]
            event["timestamp"] = days[day] + event["timestamp"][10:]
        store(events)


COMPARISONS = [
    (compare, filters) for compare in OTHER_DAYS for filters in ("", "&filters=" + quote("path~/blog"))
]


@pytest.mark.parametrize(("compare", "filters"), COMPARISONS)
def test_stats_compared_give_the_other_periods_plain_answer_and_the_change(
    reporting, stored, compare, filters
):
    first, last = OTHER_DAYS[compare]
    body = reporting.get(f"/stats?{PERIOD}{filters}&limit=100&compare={compare}").get_json()
    plain = reporting.get(f"/stats?site_id={SITE}&start={first}&end={last}{filters}&limit=100").get_json()
    found = body["comparison"]
    assert (found["compare"], found["start"], found["end"]) == (compare, first, last)
    assert {k: found[k] for k in FIGURES if k in found} == {k: plain[k] for k in FIGURES if k in plain}
    assert plain["total_views"] != body["total_views"]
    assert found["change"] == {
        name: round((body[name] - plain[name]) * 100 / plain[name], 1)
        for name in ("total_views", "unique_users")
    }
    assert found.get("from") == plain.get("from")
    assert StatsSchema().validate(body) == {}


@pytest.mark.parametrize(("compare", "filters"), COMPARISONS)
def test_a_compared_timeseries_gives_the_other_periods_points_by_position(
    reporting, stored, compare, filters
):
    first, last = OTHER_DAYS[compare]
    asked = f"/stats/timeseries?{PERIOD}{filters}&interval=hour"
    body = reporting.get(f"{asked}&compare={compare}").get_json()
    plain = reporting.get(f"/stats/timeseries?site_id={SITE}&start={first}&end={last}{filters}&interval=hour")
    found = body["comparison"]
    assert found["series"] == plain.get_json()["series"]
    assert len(found["change"]) == len(body["series"]) == 48
    for now, then, changed in zip(body["series"], found["series"], found["change"], strict=True):
        assert changed == {name: change(now[name], then[name]) for name in ("views", "unique_users")}
    assert any(changed["views"] is not None for changed in found["change"])
    assert TimeseriesSchema().validate(body) == {}


@pytest.mark.parametrize("by", ["path", "source", "event_type", "prop:plan", "entry_page"])
@pytest.mark.parametrize("compare", OTHER_DAYS)
def test_each_breakdown_row_gives_its_views_in_the_other_period(reporting, stored, compare, by):
    first, last = OTHER_DAYS[compare]
    body = reporting.get(f"/stats/breakdown?{PERIOD}&by={by}&limit=2&offset=1&compare={compare}").get_json()
    plain = reporting.get(f"/stats/breakdown?site_id={SITE}&start={first}&end={last}&by={by}&limit=100")
    views = {row["value"]: row["views"] for row in plain.get_json()["results"]}
    assert body["results"], "the page has rows"
    for row in body["results"]:
        then = views.get(row["value"], 0)
        assert row["comparison"] == {"views": then, "change": change(row["views"], then)}
    assert body["comparison"]["total"] == plain.get_json()["total"]
    assert (body["comparison"]["start"], body["comparison"]["end"]) == (first, last)
    assert BreakdownSchema().validate(body) == {}


def test_a_compared_answer_is_not_the_plain_ones_from_the_cache(reporting, stored):
    plain = reporting.get(f"/stats?{PERIOD}").get_json()
    compared = reporting.get(f"/stats?{PERIOD}&compare=previous_period").get_json()
    assert "comparison" not in plain
    assert compared == plain | {"comparison": compared["comparison"]}


@pytest.mark.parametrize("endpoint", ["/stats", "/stats/timeseries", "/stats/breakdown?by=path&"])
@pytest.mark.parametrize(
    "question",
    [f"{PERIOD}&compare=last_week", "site_id=s&start=0001-01-01&end=0001-01-02&compare=year_over_year"],
)
def test_a_bad_compare_is_a_400_naming_it(reporting, endpoint, question):
    joiner = "" if endpoint.endswith("&") else "?"
    answer = reporting.get(f"{endpoint}{joiner}{question}")
    assert answer.status_code == 400
    body = answer.get_json()
    assert (body["status"], body["message"]) == ("error", "Invalid parameters: compare")
    assert list(body["errors"]) == ["compare"]
