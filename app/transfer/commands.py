"""`flask events import` (events from an NDJSON file through the queue) and `flask seed-demo`
(demo traffic through the ingestion service)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import click
from flask.cli import AppGroup, with_appcontext

from app.extensions import redis_store
from app.queue.publish import enqueue_events
from app.settings import current_settings
from app.transfer import demo, imports, sender

# How long an import waits between two looks at a queue above its marks.
OVERLOAD_PAUSE_SECONDS = 1.0


events_group = AppGroup("events", help="Move events in.")


@events_group.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--site", help="Import every event into this site (default: each line's site_id).")
def import_command(file: Any, site: str | None) -> None:
    """Send the events of an NDJSON FILE (one event per line, as `GET /events/export` writes
    them; `-` reads standard input) through the queue and the workers, whatever their age.

    Events keep their event_id: importing a file again counts each event once. Lines that are
    no valid event are reported by number and skipped. While the queue is above its marks,
    the import waits.
    """
    settings = current_settings()

    def send(messages: list[dict[str, Any]]) -> None:
        while reason := imports.queue_overload(redis_store.client, settings):
            click.echo(f"waiting: {reason}", err=True)
            time.sleep(OVERLOAD_PAUSE_SECONDS)
        enqueue_events(messages)

    try:
        report = imports.import_now(imports.ndjson_items(file), send, site)
    except imports.ImportStoppedError as stopped:
        done = stopped.report
        raise click.ClickException(
            f"sent {done.sent} events (through line {done.sent_through_line}), then the queue did not "
            f"take the next batch ({stopped}): run it again; events sent already count once"
        ) from None
    for line, errors in report.errors.items():
        click.echo(f"line {line}: {errors}", err=True)
    if report.refused > len(report.errors):
        click.echo(f"... and {report.refused - len(report.errors)} more lines refused", err=True)
    click.echo(f"Sent {report.sent} events to the queue; refused {report.refused} lines")


@click.command("seed-demo")
@with_appcontext  # for the app's settings when called outside the `flask` command
@click.argument("site_id")
@click.option("--days", default=30, show_default=True, help="Days of traffic, today's included.")
@click.option(
    "--seed", default=1, show_default=True, help="The same seed on the same day sends the same events."
)
@click.option("--visits-per-day", default=150, show_default=True, help="Visits of a weekday at the start.")
@click.option("--url", help="The ingestion service (default: http://127.0.0.1:$INGESTION_PORT).")
@click.option("--server-key", envvar="DEMO_SERVER_KEY", help="The site's server key ($DEMO_SERVER_KEY).")
def seed_demo_command(
    site_id: str, days: int, seed: int, visits_per_day: int, url: str | None, server_key: str | None
) -> None:
    """Send DAYS days of realistic traffic to SITE_ID through the running ingestion service:
    visits from search, social sites and newsletter links, on desktops, phones and tablets,
    bounces, single-page-app navigations, custom events with props, and a few bots (which
    ingestion drops).

    Sent as a server sends on its visitors' behalf (each event carries the visitor's user
    agent and address), so ingestion does for each what it does for a real visitor's.
    """
    settings = current_settings()
    if not 1 <= days <= settings.event_max_age_days:
        raise click.BadParameter(
            f"must be 1 to EVENT_MAX_AGE_DAYS={settings.event_max_age_days}, the live events' window "
            "(older history goes in with `flask events import`)",
            param_hint="--days",
        )
    events = demo.demo_events(site_id, days, datetime.now(UTC), seed, visits_per_day)
    target = url or f"http://127.0.0.1:{settings.ingestion_port}"
    try:
        sent = sender.send_events(target, events, server_key)
    except sender.SendError as error:
        raise click.ClickException(str(error)) from None
    for errors in sent.errors:
        click.echo(f"refused: {errors}", err=True)
    click.echo(
        f"Sent {days} days of demo traffic to {site_id}: "
        f"{sent.accepted} events accepted, {sent.rejected} refused"
    )
