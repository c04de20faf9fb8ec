"""The `flask events import` command: events from an NDJSON file through the queue."""

from __future__ import annotations

import time
from typing import Any

import click
from flask.cli import AppGroup

from app.extensions import redis_store
from app.queue.publish import enqueue_events
from app.settings import current_settings
from app.transfer import imports

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
