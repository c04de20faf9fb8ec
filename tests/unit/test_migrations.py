"""`flask migrate-store`: a store the previous release wrote (events and letters keyed by bare
event id) migrated to the current layout, resumably, while workers write."""

from contextlib import contextmanager

import pytest

from app import migrations
from app.rollups import compactor
from app.store import dead_letters
from app.store import events as event_store
from app.store import rollups as rollup_store
from tasks import accounting, persist
from tests.unit.queue.accepted import accept
from tools.factories import make_message

DAYS = ("2025-11-15", "2025-11-16")


def bare_event_id(message):
    return message["event_id"]


@contextmanager
def previous_release(db, monkeypatch):
    """The previous release's keys and indexes, for as long as the `with` block runs."""
    with monkeypatch.context() as patch:
        for module in (event_store, dead_letters, persist, accounting):
            patch.setattr(module, "event_key", bare_event_id)
        db[event_store.EVENTS].drop_indexes()
        db[event_store.EVENTS].create_index([("site_id", 1), ("timestamp", 1)], name="site_id_1_timestamp_1")
        db[event_store.EVENTS].create_index("event_id", name="event_id_1")
        yield


def messages_of_two_sites():
    return [
        make_message(
            site_id=site, path=f"/{n % 3}", user_id=f"u{n % 4}", timestamp=f"{day}T{n % 24:02d}:00:00Z"
        )
        for site in ("shop", "blog")
        for day in DAYS
        for n in range(10)
    ]


@pytest.fixture
def old_store(db, counter_store, worker_app, monkeypatch):
    """Events stored and letters written by the previous release's worker, rolled up."""
    messages = messages_of_two_sites()
    with previous_release(db, monkeypatch):
        persist.store_batch(db, counter_store, accept(messages[:-2]), messages[:-2])
        dead_letters.dead_letter(db, [(message, "refused") for message in messages[-2:]], batch_id="batch-0")
        compactor.compact(db, counter_store)
    return messages


@pytest.fixture
def worker_app(ingestion_app):
    with ingestion_app.app_context():
        yield ingestion_app


def answers(reporting, path):
    return {
        (site, day): reporting.get(f"{path}?site_id={site}&date={day}").get_json()
        for site in ("shop", "blog")
        for day in DAYS
    }


def stored(db, collection):
    return sorted(sorted((k, repr(v)) for k, v in doc.items() if k != "_id") for doc in db[collection].find())


def test_a_migrated_store_answers_as_the_previous_release_did(db, old_store, reporting, counter_store):
    rolled_up = answers(reporting, "/stats")
    assert answers(reporting, "/stats/aggregated") != rolled_up  # raw reads miss the old keys
    events_before, letters_before = stored(db, event_store.EVENTS), stored(db, dead_letters.DEAD_EVENTS)
    done = migrations.migrate(db, counter_store)
    assert [name for name, _ in done] == [step.name for step in migrations.STEPS]
    assert answers(reporting, "/stats/aggregated") == rolled_up == answers(reporting, "/stats")
    assert stored(db, event_store.EVENTS) == events_before
    assert stored(db, dead_letters.DEAD_EVENTS) == letters_before
    for event in db[event_store.EVENTS].find():
        assert event["_id"] == event_store.event_key({**event, "timestamp": event["timestamp"].isoformat()})
    assert set(dead_letters.letters_of(db, [event_store.event_key(m) for m in old_store[-2:]])) == {
        event_store.event_key(m) for m in old_store[-2:]
    }


def test_a_second_migration_changes_nothing(db, old_store, counter_store):
    migrations.migrate(db, counter_store)
    events, letters = list(db[event_store.EVENTS].find()), list(db[dead_letters.DEAD_EVENTS].find())
    assert migrations.migrate(db, counter_store) == []
    assert migrations.pending(db) == []
    assert list(db[event_store.EVENTS].find()) == events
    assert list(db[dead_letters.DEAD_EVENTS].find()) == letters


def test_a_migration_that_stops_halfway_finishes_when_run_again(db, old_store, counter_store, monkeypatch):
    collection_type = type(db[event_store.EVENTS])
    insert_many = collection_type.insert_many
    calls = []

    def failing_on_second(self, documents, *args, **kwargs):
        calls.append(len(documents))
        if len(calls) == 2:
            raise RuntimeError("killed")
        return insert_many(self, documents, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(collection_type, "insert_many", failing_on_second)
        patch.setattr(event_store, "MIGRATION_BATCH", 7)
        with pytest.raises(RuntimeError):
            migrations.migrate(db, counter_store)
    assert migrations.pending(db) == migrations.STEPS
    migrations.migrate(db, counter_store)
    assert db[event_store.EVENTS].count_documents({}) == len(old_store) - 2
    assert all(event_store.KEY_SEPARATOR in event["_id"] for event in db[event_store.EVENTS].find())
    assert sorted(event["event_id"] for event in db[event_store.EVENTS].find()) == sorted(
        message["event_id"] for message in old_store[:-2]
    )


def test_a_retry_stored_by_a_worker_during_the_migration_is_refused(
    db, old_store, counter_store, monkeypatch
):
    """Between two batches of the migration, a client's retry of an event not yet migrated."""
    retry = {**old_store[-3], "timestamp": "2025-11-16T23:59:00+00:00"}
    rekey = event_store.rekey_events
    rounds: list[int] = []

    def storing_a_retry_between_batches(db, documents):
        if not rounds:
            rounds.append(persist.store_batch(db, counter_store, accept([retry]), [retry]))
        return rekey(db, documents)

    monkeypatch.setattr(event_store, "MIGRATION_BATCH", 5)
    monkeypatch.setattr(event_store, "rekey_events", storing_a_retry_between_batches)
    migrations.migrate(db, counter_store)
    assert rounds == [0]
    assert db[event_store.EVENTS].count_documents({}) == len(old_store) - 2


def test_the_command_migrates_and_says_what_each_step_did(ingestion_app, db, old_store):
    result = ingestion_app.test_cli_runner().invoke(args=["migrate-store"])
    assert result.exit_code == 0, result.output
    assert f"{len(old_store) - 2} events" in result.output
    again = ingestion_app.test_cli_runner().invoke(args=["migrate-store"])
    assert "Nothing to migrate" in again.output


def test_rollups_are_not_rebuilt_before_the_store_is_migrated(ingestion_app, db, old_store):
    """Before the first step a rebuild reads none of the events not yet moved (zero rollups),
    before the second it numbers users anew."""
    rebuild = ["rebuild-rollups", "--site-id", "shop", "--start", DAYS[0]]
    refused = ingestion_app.test_cli_runner().invoke(args=rebuild)
    assert refused.exit_code != 0
    assert "flask migrate-store" in refused.output
    ingestion_app.test_cli_runner().invoke(args=["migrate-store"])
    rebuilt = ingestion_app.test_cli_runner().invoke(args=rebuild)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "20 events" in rebuilt.output


def test_a_new_store_is_recorded_migrated_by_the_first_worker_to_start(db):
    assert migrations.adopt_new_store(db)
    assert migrations.pending(db) == []
    assert not migrations.adopt_new_store(db)


@pytest.mark.parametrize("collection", [event_store.EVENTS, dead_letters.DEAD_EVENTS, rollup_store.ROLLUPS])
def test_a_store_holding_anything_is_never_recorded_migrated_unasked(db, collection):
    """A store an earlier release wrote keeps its steps pending until `migrate-store` runs them."""
    db[collection].insert_one({"_id": "written-by-an-earlier-release"})
    assert not migrations.adopt_new_store(db)
    assert migrations.pending(db) == migrations.STEPS


def test_the_old_store_is_not_adopted(db, old_store):
    assert not migrations.adopt_new_store(db)
    assert migrations.pending(db) == migrations.STEPS
