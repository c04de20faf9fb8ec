"""`flask` CLI commands for operators."""

from __future__ import annotations

import click

from app import storage
from app.extensions import mongo


@click.command("create-indexes")
def create_indexes_command() -> None:
    """Create the MongoDB indexes of the contract (idempotent)."""
    storage.ensure_indexes(mongo.db)
    click.echo(f"Indexes ensured on {mongo.db.name}.{storage.EVENTS}")
