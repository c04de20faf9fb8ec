"""A review's findings on the folded visits (issue 28): each test states what docs/sessions.md
promises, and fails on the code as merged (e493692)."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.rollups import compactor
from app.store import visits as visit_store
from app.store.user_numbers import user_key
from reporting import queries
from reporting.periods import Period
from tasks.persist import store_batch
from tests.unit.sessions.test_fold import SITE, START, at
from tools.factories import make_message


def test_a_visit_whose_start_moves_back_more_than_an_hour_is_still_counted(db, counter_store):
    """Earlier events of a visit arrive later, each within 30 minutes of the visit's first:
    its start moves back past LATE_START (from the 01:30 that keys it to 23:25 the day
    before). The breakdown of its day misses it, and no other day counts it: "counted at most
    a little high, never low" does not hold."""
    opening = datetime(2025, 11, 16, 1, 30, tzinfo=UTC)
    for back in range(6):  # 01:30, 01:05, 00:40, 00:15, 23:50, 23:25
        moment = opening - timedelta(minutes=25 * back)
        store_batch(db, counter_store, f"b{back}", [at((moment - START).total_seconds() / 60, f"/{back}")])
        compactor.compact(db, counter_store)
    [visit] = db[visit_store.VISITS].find()
    assert visit["start"] == datetime(2025, 11, 15, 23, 25, tzinfo=UTC)

    def entries(day: date) -> list[str]:
        period = Period(SITE, day, day, ZoneInfo("UTC"))
        return [row.value for row in queries.breakdown(db, period, "entry_page", 10, 0).results]

    counted = entries(date(2025, 11, 15)) + entries(date(2025, 11, 16))
    assert counted == ["/5"]


def test_the_visits_keep_no_link_between_two_days_visitor_ids(db, counter_store):
    """docs/visitors.md: "Once a day's salt is deleted, nobody can tell whether two ids of
    that day were the same person as any later id". A visit across midnight is stored as one:
    the new day's id's state names a visit whose visitor is the previous day's id, in
    collections nothing prunes (not even retention), so the two ids stay linked for good."""
    evening, morning = "a" * 32, "b" * 32
    before = make_message(site_id=SITE, user_id=None, path="/", timestamp="2025-11-15T23:50:00Z")
    store_batch(db, counter_store, "b1", [{**before, "visitor_id": evening}])
    after = make_message(site_id=SITE, user_id=None, path="/after", timestamp="2025-11-16T00:10:00Z")
    store_batch(db, counter_store, "b2", [{**after, "visitor_id": morning, "previous_visitor_id": evening}])
    compactor.compact(db, counter_store)
    state = db[visit_store.VISIT_STATES].find_one({"_id": user_key(SITE, morning)})
    followed = [state.get("current"), state.get("previous")]
    linked = {visit["visitor"] for visit in db[visit_store.VISITS].find({"_id": {"$in": followed}})}
    assert evening not in linked
