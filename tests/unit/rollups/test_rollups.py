"""What a rollup holds: user bitmaps, the stored form, and the users' integer ids."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from pyroaring import BitMap

from app.rollups import user_ids
from app.rollups.buckets import containing_buckets, cover
from app.rollups.tally import Tally, TypeTally, quarter_documents, quarter_tallies

ids = st.sets(st.integers(min_value=1, max_value=1_000_000), max_size=200)


@given(ids, ids, st.dictionaries(st.text(max_size=20), st.integers(1, 1000), max_size=20))
def test_a_packed_tally_unpacks_to_itself_and_adds_up(first, second, paths):
    tally = Tally(
        {
            "page_view": TypeTally(7, BitMap(first), Counter(paths)),
            "click": TypeTally(1, BitMap(second)),
        }
    )
    assert Tally.unpack(tally.pack()) == tally
    total = Tally.unpack(tally.pack())
    total.add_packed(tally.pack())
    assert total.unique_users == len(first | second)
    assert total.events == 16
    assert total.paths == Counter({path: 2 * views for path, views in paths.items()})
    assert Tally.from_document(tally.to_document()) == tally


def test_a_busy_day_is_stored_compressed():
    """A day of the busiest site of `make bench-reporting` at 1M events: about 8,000 of
    45,000 users and 500 paths. FerretDB's read time follows the stored bytes."""
    users = BitMap(range(1, 45_000, 6))
    paths = Counter({f"/blog/post-{n}": 1000 // n + 1 for n in range(1, 500)})
    stored = Tally({"page_view": TypeTally(8000, users, paths)}).pack()
    assert len(stored) < (len(users.serialize()) + len(orjson.dumps(paths))) / 2


def test_a_user_keeps_one_id_per_site_and_new_users_get_the_next(db):
    first = user_ids.ids_by_site(db, {"site-a": ["ann", "bob"]})["site-a"]
    assert sorted(first.values()) == [1, 2]
    again = user_ids.ids_by_site(db, {"site-a": ["bob", "cy", "ann"], "site-b": ["cy"], "site-c": []})
    assert again == {"site-a": {**first, "cy": 3}, "site-b": {"cy": 1}}
    assert user_ids.ids_by_site(db, {"site-b": ["dee", "cy"]}) == {"site-b": {"cy": 1, "dee": 2}}


def test_numbering_replaces_user_ids_and_leaves_events_without_users_alone(db):
    events: list[dict[str, Any]] = [
        {"site_id": "s", "user_id": "ann"},
        {"site_id": "s", "user_id": None},
        {"site_id": "s", "user_id": "ann"},
    ]
    numbered = user_ids.numbered(db, events)
    assert [event["user_id"] for event in numbered] == [1, None, 1]
    assert [event["user_id"] for event in user_ids.numbered_locally(events)] == [1, None, 1]


def test_a_cover_takes_whole_weeks_then_days_then_hours():
    start, end = datetime(2025, 11, 8, 22, tzinfo=UTC), datetime(2025, 11, 26, 1, tzinfo=UTC)
    buckets = cover("s", start, end)
    assert buckets is not None
    assert [(bucket.level, bucket.start.strftime("%a %d %H")) for bucket in buckets] == [
        ("hour", "Sat 08 22"),
        ("hour", "Sat 08 23"),
        ("day", "Sun 09 00"),
        ("week", "Mon 10 00"),
        ("week", "Mon 17 00"),
        ("day", "Mon 24 00"),
        ("day", "Tue 25 00"),
        ("hour", "Wed 26 00"),
    ]
    assert buckets[3].id == "s|week|2025-11-10"
    assert [b.id for b in containing_buckets("s", datetime(2025, 11, 16, 23, tzinfo=UTC), finest="hour")] == [
        "s|week|2025-11-10",
        "s|day|2025-11-16",
        "s|hour|2025-11-16T23",
    ]


stored_events = st.lists(
    st.fixed_dictionaries(
        {
            "site_id": st.sampled_from(["site-1", "site-2"]),
            "event_type": st.sampled_from(["page_view", "click", "signup"]),
            "user_id": st.one_of(st.none(), st.sampled_from(["", "u-1", "u-2", "u-3"])),
            "path": st.one_of(st.none(), st.sampled_from(["", "/", "/a.b", "$x"])),
            "timestamp": st.datetimes(
                min_value=datetime(2025, 11, 14), max_value=datetime(2025, 11, 16), timezones=st.just(UTC)
            ),
        }
    ),
    max_size=60,
)


@given(stored_events)
def test_a_batch_s_quarter_documents_are_its_quarter_tallies_naming_the_users(events):
    numbered = user_ids.numbered_locally(events)
    pairs = zip(events, numbered, strict=True)
    names = {copy["user_id"]: event["user_id"] for event, copy in pairs if copy.get("user_id")}
    expected = {key: tally.to_document(names) for key, tally in quarter_tallies(numbered).items()}
    assert quarter_documents(events) == expected


def test_a_cover_at_the_calendar_s_end_takes_days_where_the_last_week_ends_past_it():
    """The week from Monday 9999-12-27 ends in year 10000, past what a datetime holds."""
    start, end = datetime(9999, 12, 26, 5, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)
    buckets = cover("s", start, end)
    assert buckets is not None
    assert [(bucket.level, bucket.start.strftime("%d %H")) for bucket in buckets] == [
        *(("hour", f"26 {hour:02d}") for hour in range(5, 24)),
        ("day", "27 00"),
        ("day", "28 00"),
        ("day", "29 00"),
        ("day", "30 00"),
    ]


def test_a_cover_of_quarter_hour_ends_takes_quarters_only_at_the_edges():
    """A day in Asia/Kathmandu (+05:45) starts at 18:15 UTC."""
    start, end = datetime(2025, 11, 14, 18, 15, tzinfo=UTC), datetime(2025, 11, 16, 18, 15, tzinfo=UTC)
    buckets = cover("s", start, end)
    assert buckets is not None
    assert [(bucket.level, bucket.start.strftime("%d %H:%M")) for bucket in buckets] == [
        ("quarter", "14 18:15"),
        ("quarter", "14 18:30"),
        ("quarter", "14 18:45"),
        *(("hour", f"14 {hour}:00") for hour in range(19, 24)),
        ("day", "15 00:00"),
        *(("hour", f"16 {hour:02d}:00") for hour in range(18)),
        ("quarter", "16 18:00"),
    ]
    assert buckets[0].id == "s|quarter|2025-11-14T18:15"


def test_an_interval_off_the_quarter_hours_has_no_cover():
    """Monrovia kept -00:44:30 until 1972: its days start off any quarter hour."""
    start = datetime(1960, 5, 1, 0, 44, 30, tzinfo=UTC)
    assert cover("s", start, start + timedelta(days=1)) is None


def test_a_quarter_s_delta_adds_into_its_week_day_hour_and_quarter():
    moment = datetime(2025, 11, 16, 23, 45, tzinfo=UTC)
    assert [b.id for b in containing_buckets("s", moment)] == [
        "s|week|2025-11-10",
        "s|day|2025-11-16",
        "s|hour|2025-11-16T23",
        "s|quarter|2025-11-16T23:45",
    ]
    assert [b.level for b in containing_buckets("s", moment, finest="hour")] == ["week", "day", "hour"]
