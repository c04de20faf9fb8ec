"""`flask` CLI commands for operators."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import click
from flask.cli import with_appcontext
from kombu.exceptions import OperationalError

from app import migrations
from app.extensions import mongo, redis_store
from app.queue.publish import enqueue_events
from app.queue.transport import PublishOutcomeUnknownError
from app.rollups import compactor
from app.rollups.buckets import floor_to
from app.rollups.caps import Caps
from app.settings import current_settings
from app.store import dead_letters, events, user_numbers, visits


@click.command("create-indexes")
def create_indexes_command() -> None:
    """Create the MongoDB indexes of the contract (idempotent)."""
    events.ensure_indexes(mongo.db)
    user_numbers.ensure_indexes(mongo.db)
    visits.ensure_indexes(mongo.db)
    click.echo(
        f"Indexes ensured on {mongo.db.name}.{events.EVENTS}, {user_numbers.USER_NUMBERS}"
        f" and {visits.VISIT_STATES}"
    )


@click.command("migrate-store")
def migrate_store_command() -> None:
    """Bring the store up to this release's layout, step by step (idempotent, resumable, safe
    while workers write): run it after each upgrade."""
    done = migrations.migrate(mongo.db, redis_store.client)
    for name, summary in done:
        click.echo(f"{name}: {summary}")
    if not done:
        click.echo("Nothing to migrate: the store is up to date")


@click.command("replay-dead")
@click.option("--batch-size", default=500, show_default=True, help="Events per re-enqueued message.")
def replay_dead_command(batch_size: int) -> None:
    """Re-enqueue the events of the dead letters, marked as a replay; the worker that stores
    an event (or finds it stored) removes its letter, and one that fails again keeps it.

    Replays only what was dead when the command started, so events that fail again while it
    runs wait for the next replay instead of looping. It deletes nothing: on FerretDB no
    delete can tell a letter as read from one a worker wrote again since.
    """
    letters = dead_letters.dead_letters(mongo.db, failed_by=datetime.now(UTC))
    replayed = 0
    while batch := list(itertools.islice(letters, batch_size)):
        try:
            enqueue_events([letter["event"] for letter in batch], replay=True)
        except (OperationalError, PublishOutcomeUnknownError) as error:
            raise click.ClickException(
                f"Re-enqueued {replayed} dead-lettered events, then the queue did not take the next "
                f"{len(batch)} ({error}): run it again (an event queued twice is stored and counted once)"
            ) from None
        replayed += len(batch)
    click.echo(
        f"Re-enqueued {replayed} dead-lettered events; each letter goes once a worker stores its event"
    )


@click.command("replay-set-aside")
def replay_set_aside_command() -> None:
    """Give the compactor again the rollup entries it set aside (after fixing what failed)."""
    try:
        replayed = compactor.replay_set_aside(mongo.db, redis_store.client)
    except compactor.CompactorBusyError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Appended {replayed} set-aside entries again")


@click.command("rebuild-rollups")
@with_appcontext  # for the caps in the app's settings
@click.option("--site-id", required=True, help="The site whose rollups to recompute.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First UTC day.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), help="Last UTC day (default: --start).")
def rebuild_rollups_command(site_id: str, start: datetime, end: datetime | None) -> None:
    """Recompute a site's rollups of the UTC weeks (from Monday) holding days START..END from
    its raw events."""
    last = (end or start).date()
    if last < start.date():
        raise click.BadParameter("must not be before --start", param_hint="--end")
    pending = migrations.pending(mongo.db)
    if pending:
        # Before the events are keyed anew a rebuild reads none of those not yet moved, and
        # before users' numbers are in MongoDB it numbers users anew: rollups rebuilt wrong.
        raise click.ClickException(
            f"the store has migration steps to run first ({', '.join(step.name for step in pending)}): "
            "run `flask migrate-store`, then rebuild"
        )
    kept_from = compactor.first_whole_week(mongo.db)
    if floor_to(start.replace(tzinfo=UTC), "week") < kept_from:
        raise click.BadParameter(
            f"retention deleted raw events of its week (the weeks from {kept_from.date()} are whole): "
            "a rebuild would count only those left",
            param_hint="--start",
        )
    settings = current_settings()
    if settings.event_retention_days > 0 and floor_to(start.replace(tzinfo=UTC), "week") < datetime.now(
        UTC
    ) - timedelta(days=settings.event_retention_days):
        raise click.BadParameter(
            f"its week's raw events may be gone (EVENT_RETENTION_DAYS={settings.event_retention_days}): "
            "a rebuild would count only those left",
            param_hint="--start",
        )
    try:
        caps = Caps.of(settings)
        counted = compactor.rebuild(mongo.db, redis_store.client, site_id, start.date(), last, caps)
    except compactor.CompactorBusyError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Rebuilt the rollups of {site_id} from {start.date()} to {last}: {counted} events")
