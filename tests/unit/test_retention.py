"""EVENT_RETENTION_DAYS: expired raw events deleted per site in small batches, rollups kept."""

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

from app import create_app, retention
from app.rollups import compactor
from app.rollups import migrations as rollup_migrations
from app.settings import Settings
from app.store import event_sites, sites
from app.store import events as event_store
from app.store import rollups as rollup_store
from app.store import visits as visit_store
from tasks import maintenance, persist
from tests.unit.queue.accepted import accept
from tools.factories import make_message

NOW = datetime(2025, 12, 31, 12, tzinfo=UTC)


def stored_on(db, counter_store, site_id, days_ago, count=1):
    moment = (NOW - timedelta(days=days_ago)).isoformat()
    messages = [make_message(site_id=site_id, timestamp=moment) for _ in range(count)]
    persist.store_batch(db, counter_store, accept(messages), messages)
    return messages


def stored_sites(db):
    return sorted(event["site_id"] for event in db[event_store.EVENTS].find())


def test_expired_events_of_every_site_go_and_their_rollups_stay(db, counter_store, ingestion_app):
    sites.save_site(db, "registered", [])
    with ingestion_app.app_context():
        stored_on(db, counter_store, "registered", days_ago=40, count=3)
        stored_on(db, counter_store, "registered", days_ago=10)
        event_sites.forget_seen()  # another worker process stored this site's events
        db[event_sites.EVENT_SITES].delete_many({})
        stored_on(db, counter_store, "unregistered", days_ago=31)
        stored_on(db, counter_store, "unregistered", days_ago=29)
        compactor.compact(db, counter_store)
    rollups = list(db[rollup_store.ROLLUPS].find())
    swept = retention.sweep(db, NOW, days=30)
    assert swept.deleted == 4
    assert stored_sites(db) == ["registered", "unregistered"]
    assert list(db[rollup_store.ROLLUPS].find()) == rollups


def test_the_visits_opened_before_the_mark_go_with_the_raw_events(db, counter_store, ingestion_app):
    with ingestion_app.app_context():
        for days_ago in (40, 31, 29):
            stored_on(db, counter_store, "shop", days_ago=days_ago)
        compactor.compact(db, counter_store)
    assert db[visit_store.VISITS].count_documents({}) == 3
    swept = retention.sweep(db, NOW, days=30, batch_size=1)
    assert (swept.deleted, swept.visits) == (2, 2)
    [kept] = db[visit_store.VISITS].find()
    assert kept["start"] == NOW - timedelta(days=29)


def test_retention_is_off_by_default(db, counter_store, ingestion_app, settings):
    assert settings.event_retention_days == 0
    with ingestion_app.app_context():
        stored_on(db, counter_store, "shop", days_ago=4000)
    assert retention.sweep(db, NOW, days=settings.event_retention_days).deleted == 0
    assert stored_sites(db) == ["shop"]


def test_a_sweep_deletes_in_small_batches_yields_between_them_and_stops_at_its_bound(
    db, counter_store, ingestion_app
):
    with ingestion_app.app_context():
        stored_on(db, counter_store, "shop", days_ago=60, count=7)
    pauses = []

    def pause():
        pauses.append(db[event_store.EVENTS].count_documents({}))
        return True

    first = retention.sweep(db, NOW, days=30, batch_size=2, seconds=3, pause=pause, clock=ticking())
    assert (first.deleted, first.finished) == (6, False)
    assert pauses == [5, 3]
    second = retention.sweep(db, NOW, days=30, batch_size=2, seconds=3, clock=ticking())
    assert (second.deleted, second.finished) == (1, True)


def ticking():
    """A clock that moves one second each time it is read: one batch a second."""
    seconds = iter(range(1_000_000))
    return lambda: next(seconds)


def test_a_sweep_cut_short_goes_on_with_the_next_site_not_the_first(db, counter_store, ingestion_app):
    """A site with a large backlog first in order would otherwise have every sweep to itself."""
    with ingestion_app.app_context():
        for site_id in ("a-large", "b", "c"):
            stored_on(db, counter_store, site_id, days_ago=60, count=4)
    first = retention.sweep(db, NOW, days=30, batch_size=2, seconds=1, clock=ticking())
    assert (first.finished, first.next_site) == (False, "b")
    second = retention.sweep(db, NOW, days=30, batch_size=2, seconds=1, clock=ticking(), first_site="b")
    assert second.next_site == "c"
    assert sorted(stored_sites(db)) == ["a-large", "a-large", "b", "b", "c", "c", "c", "c"]


def test_a_worker_sweeps_again_at_once_until_nothing_expired_is_left(
    db, counter_store, ingestion_app, monkeypatch
):
    with ingestion_app.app_context():
        for site_id in ("a-large", "b"):
            stored_on(db, counter_store, site_id, days_ago=400, count=5)
    monkeypatch.setattr(retention, "BATCH_SIZE", 2)
    monkeypatch.setattr(retention, "SWEEP_SECONDS", 0)  # one batch a sweep
    swept = maintenance.sweep_expired(db, counter_store, Settings(event_retention_days=60), threading.Event())
    assert swept is not None
    assert (swept.deleted, swept.finished) == (10, True)
    assert stored_sites(db) == []


def test_a_sweep_stops_when_its_worker_does(db, counter_store, ingestion_app):
    with ingestion_app.app_context():
        stored_on(db, counter_store, "shop", days_ago=60, count=5)
    swept = retention.sweep(db, NOW, days=30, batch_size=2, pause=lambda: False)
    assert (swept.deleted, swept.finished) == (2, False)


def test_a_worker_records_each_site_once_per_process(db, counter_store, ingestion_app, monkeypatch):
    writes = []
    record = event_sites.record_sites

    def recording(db, site_ids):
        writes.append(set(site_ids))
        record(db, site_ids)

    monkeypatch.setattr(event_sites, "record_sites", recording)
    with ingestion_app.app_context():
        stored_on(db, counter_store, "shop", days_ago=1)
        stored_on(db, counter_store, "shop", days_ago=2)
        stored_on(db, counter_store, "blog", days_ago=2)
    assert event_sites.known_sites(db) == {"shop", "blog"}
    assert writes == [{"shop"}, {"blog"}]


def test_one_worker_at_a_time_sweeps(db, counter_store, ingestion_app):
    with ingestion_app.app_context():
        stored_on(db, counter_store, "shop", days_ago=400)
    settings = Settings(event_retention_days=60)
    stopping = threading.Event()
    first = maintenance.sweep_expired(db, counter_store, settings, stopping)
    assert first is not None
    assert first.deleted == 1
    assert maintenance.sweep_expired(db, counter_store, settings, stopping) is None


def test_a_rebuild_of_days_whose_raw_events_expired_is_refused(settings, db, counter_store, migrated):
    expiring = dataclasses.replace(settings, event_max_age_days=30, event_retention_days=60)
    app = create_app("reporting", expiring)
    early = (datetime.now(UTC) - timedelta(days=61)).date().isoformat()
    result = app.test_cli_runner().invoke(args=["rebuild-rollups", "--site-id", "shop", "--start", early])
    assert result.exit_code != 0
    assert "EVENT_RETENTION_DAYS" in result.output


def day_rollups(db):
    return {
        r["_id"]: r.get("events")
        for r in db[rollup_store.ROLLUPS].find({"_id": {"$regex": r"\|(day|week)\|"}})
    }


def test_a_rebuild_keeps_the_rollups_of_weeks_whose_raw_events_expired(db, counter_store, ingestion_app):
    """Whatever the rebuilding process's own setting: the store records how far the sweeps went."""
    with ingestion_app.app_context():
        stored_on(db, counter_store, "shop", days_ago=60, count=5)
        stored_on(db, counter_store, "shop", days_ago=2, count=2)
        compactor.compact(db, counter_store)
    before = day_rollups(db)
    assert retention.sweep(db, NOW, days=30).deleted == 5
    first, last = (NOW - timedelta(days=60)).date(), NOW.date()
    assert compactor.rebuild(db, counter_store, "shop", first, last) == 2
    assert day_rollups(db) == before


def test_the_quarters_step_leaves_the_weeks_whose_raw_events_expired(db, counter_store, ingestion_app):
    with ingestion_app.app_context():
        stored_on(db, counter_store, "shop", days_ago=60, count=4)
        compactor.compact(db, counter_store)
    before = day_rollups(db)
    retention.sweep(db, NOW, days=30)
    rollup_migrations.build_quarter_rollups(db, counter_store)
    assert day_rollups(db) == before


def test_the_rebuild_command_refuses_weeks_a_sweep_reached_whatever_its_setting(
    settings, db, counter_store, migrated
):
    retention.sweep(db, datetime.now(UTC), days=60)
    early = (datetime.now(UTC) - timedelta(days=61)).date().isoformat()
    app = create_app("reporting", settings)  # EVENT_RETENTION_DAYS=0 here
    result = app.test_cli_runner().invoke(args=["rebuild-rollups", "--site-id", "shop", "--start", early])
    assert result.exit_code != 0
    assert "retention deleted" in result.output
