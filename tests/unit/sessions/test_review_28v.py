"""A review's findings on the folded visits (issue 28): each test states what docs/sessions.md
promises, and fails on the code as merged (e493692)."""

from app.rollups import compactor
from app.store import visits as visit_store
from app.store.user_numbers import user_key
from tasks.persist import store_batch
from tests.unit.sessions.test_fold import SITE
from tools.factories import make_message


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
