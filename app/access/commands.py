"""`flask site ...` and `flask key ...`: the operator's commands for sites and read keys."""

from __future__ import annotations

import click

from app.access import keys
from app.access.origins import domain_name
from app.extensions import mongo
from app.store import sites


def domain_option(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> list[str]:
    try:
        return list(dict.fromkeys(domain_name(value) for value in values))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.group("site")
def site_group() -> None:
    """Register the sites whose events ingestion accepts (AUTH_MODE=keys)."""


@site_group.command("add")
@click.argument("site_id")
@click.option(
    "--domain",
    "domains",
    multiple=True,
    callback=domain_option,
    help="A host the site's pages are served from (repeat for each; www. is a host of its own). "
    "Without any, only servers (no Origin or Referer) may send its events.",
)
def add_site_command(site_id: str, domains: list[str]) -> None:
    """Register SITE_ID with exactly these domains (again: replace its domains)."""
    new = sites.save_site(mongo.db, site_id, domains)
    click.echo(
        f"{'Registered' if new else 'Updated'} site {site_id}: domains {', '.join(domains) or '(none)'}"
    )


@site_group.command("list")
def list_sites_command() -> None:
    """The registered sites and their domains, one a line."""
    for site_id, domains in sites.registered_sites(mongo.db).items():
        click.echo(f"{site_id}\t{','.join(domains)}")


@site_group.command("remove")
@click.argument("site_id")
def remove_site_command(site_id: str) -> None:
    """Unregister SITE_ID and revoke its read keys (its stored events stay)."""
    if not sites.remove_site(mongo.db, site_id):
        raise click.ClickException(f"No site {site_id} is registered")
    click.echo(f"Removed site {site_id} and its read keys")


@click.group("key")
def key_group() -> None:
    """Read keys for the reporting service (AUTH_MODE=keys)."""


@key_group.command("create")
@click.argument("site_id", required=False)
@click.option("--operator", is_flag=True, help="A key that reads every site and /health/pipeline.")
def create_key_command(site_id: str | None, operator: bool) -> None:
    """Make a read key for SITE_ID (or, with --operator, for every site); print it once, as
    the last line."""
    if operator == (site_id is not None):
        raise click.UsageError("Give either SITE_ID or --operator")
    if site_id is not None and not sites.is_registered(mongo.db, site_id):
        raise click.ClickException(f"No site {site_id} is registered: flask site add {site_id} --domain ...")
    key = keys.create_key(mongo.db, site_id)
    owner = f"site {site_id}" if site_id else "the operator"
    click.echo(f"Key {key.key_id} for {owner}; it is shown only now, store it safely:")
    click.echo(key.secret)


@key_group.command("list")
@click.argument("site_id", required=False)
def list_keys_command(site_id: str | None) -> None:
    """The keys (ids, never secrets) of SITE_ID, or of every site and the operator."""
    for key in sites.read_keys(mongo.db, site_id):
        click.echo(f"{key.key_id}\t{key.site_id or '(operator)'}\t{key.created_at:%Y-%m-%dT%H:%M:%SZ}")


@key_group.command("revoke")
@click.argument("key_id")
def revoke_key_command(key_id: str) -> None:
    """Delete the key KEY_ID; services stop accepting it within KEY_CACHE_SECONDS."""
    if not sites.revoke_key(mongo.db, key_id):
        raise click.ClickException(f"No key {key_id}")
    click.echo(f"Revoked key {key_id}")
