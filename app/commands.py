"""`flask` CLI commands for operators."""

from __future__ import annotations

from datetime import datetime

import click
from flask.cli import with_appcontext
from kombu.exceptions import OperationalError

from app.extensions import mongo, redis_store
from app.queue.publish import enqueue_events
from app.queue.transport import PublishOutcomeUnknownError
from app.rollups import compactor
from app.rollups.caps import Caps
from app.settings import current_settings
from app.store import dead_letters, events


@click.command("create-indexes")
def create_indexes_command() -> None:
    """Create the MongoDB indexes of the contract (idempotent)."""
    events.ensure_indexes(mongo.db)
    click.echo(f"Indexes ensured on {mongo.db.name}.{events.EVENTS}")


@click.command("replay-dead")
@click.option("--batch-size", default=500, show_default=True, help="Events per re-enqueued message.")
def replay_dead_command(batch_size: int) -> None:
    """Re-enqueue dead-lettered events, removing each batch's letters once it is queued.

    Replays only what was dead when the command started, so events that fail again
    while it runs wait for the next replay instead of looping. A letter is removed only as
    it was read: an event that failed again meanwhile (even inside this command, where
    tasks run eagerly) has a new letter, which stays.
    """
    db = mongo.db
    remaining = dead_letters.count_dead_letters(db)
    replayed = 0
    while remaining > 0:
        letters = dead_letters.dead_letters(db, min(batch_size, remaining))
        if not letters:
            break
        try:
            enqueue_events([letter["event"] for letter in letters], count_as_accepted=False)
        except (OperationalError, PublishOutcomeUnknownError) as error:
            raise click.ClickException(
                f"Re-enqueued {replayed} dead-lettered events, then the queue did not take the next "
                f"{len(letters)} ({error}): their letters are kept; run it again (an event "
                "queued twice is stored once)"
            ) from None
        dead_letters.remove_as_read(db, letters)
        replayed += len(letters)
        remaining -= len(letters)
    click.echo(f"Re-enqueued {replayed} dead-lettered events")


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
    try:
        caps = Caps.of(current_settings())
        counted = compactor.rebuild(mongo.db, redis_store.client, site_id, start.date(), last, caps)
    except compactor.CompactorBusyError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Rebuilt the rollups of {site_id} from {start.date()} to {last}: {counted} events")
