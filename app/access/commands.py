"""`flask site ...` and `flask key ...`: the operator's commands for sites, their dashboard
links, read keys and server keys."""

from __future__ import annotations

import uuid
from urllib.parse import quote, urlencode

import click

from app.access import keys, shares
from app.access.origins import domain_name
from app.extensions import mongo
from app.store import sites


def domain_option(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> list[str]:
    try:
        return list(dict.fromkeys(domain_name(value) for value in values))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def umami_id_option(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    """An Umami website id as Umami writes it: a UUID, lower-case, hyphenated."""
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a UUID (Umami's website ids are)") from None


def not_registered(site_id: str) -> click.ClickException:
    return click.ClickException(f"No site {site_id} is registered")


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
@click.option(
    "--require-server-key",
    is_flag=True,
    help="Refuse events from servers (no Origin or Referer) without one of the site's server keys "
    "(flask key create SITE --server).",
)
@click.option(
    "--umami-id",
    callback=umami_id_option,
    help="The website id (a UUID) Umami's trackers and SDKs send the site's events with "
    "(POST /api/send). Without it, a registered site keeps the one it has.",
)
def add_site_command(
    site_id: str, domains: list[str], require_server_key: bool, umami_id: str | None
) -> None:
    """Register SITE_ID with exactly these domains and this server-key rule (again: replace
    them), and with --umami-id, that Umami website id."""
    try:
        new = sites.save_site(mongo.db, site_id, domains, require_server_key, umami_id)
    except sites.UmamiIdTakenError as error:
        raise click.ClickException(str(error)) from None
    rule = "; servers need a server key" if require_server_key else ""
    umami = f"; Umami website id {umami_id}" if umami_id else ""
    click.echo(
        f"{'Registered' if new else 'Updated'} site {site_id}: "
        f"domains {', '.join(domains) or '(none)'}{rule}{umami}"
    )


@site_group.command("umami-id")
@click.argument("site_id")
@click.argument("umami_id", required=False, callback=umami_id_option)
@click.option("--clear", is_flag=True, help="Remove the site's Umami website id.")
def umami_id_command(site_id: str, umami_id: str | None, clear: bool) -> None:
    """Give the registered SITE_ID the Umami website id UMAMI_ID, or with --clear none."""
    if clear == (umami_id is not None):
        raise click.UsageError("Give either UMAMI_ID or --clear")
    try:
        found = sites.set_umami_id(mongo.db, site_id, umami_id)
    except sites.UmamiIdTakenError as error:
        raise click.ClickException(str(error)) from None
    if not found:
        raise not_registered(site_id)
    click.echo(f"Site {site_id}: " + (f"Umami website id {umami_id}" if umami_id else "no Umami website id"))


@site_group.command("list")
def list_sites_command() -> None:
    """The registered sites and their domains, one a line; then whether servers need a key,
    and the Umami website id."""
    for site_id, site in sites.registered_sites(mongo.db).items():
        rule = "\tserver key required" if site.require_server_key else ""
        umami = f"\tumami {site.umami_id}" if site.umami_id else ""
        click.echo(f"{site_id}\t{','.join(site.domains)}{rule}{umami}")


@site_group.command("remove")
@click.argument("site_id")
def remove_site_command(site_id: str) -> None:
    """Unregister SITE_ID and revoke its keys (its stored events stay)."""
    if not sites.remove_site(mongo.db, site_id):
        raise not_registered(site_id)
    click.echo(f"Removed site {site_id} and its keys")


@site_group.command("share")
@click.argument("site_id")
def share_site_command(site_id: str) -> None:
    """Make a read-only link to SITE_ID's dashboard; print it once, as the last line. The
    site has one link at a time: a new one revokes the last."""
    token = shares.share(mongo.db, site_id)
    if token is None:
        raise not_registered(site_id)
    click.echo(
        f"Read-only dashboard link of site {site_id}, on the reporting service; "
        f"`flask site unshare {site_id}` revokes it:"
    )
    click.echo(f"/dashboard/{quote(site_id)}?{urlencode({'share': token})}")


@site_group.command("unshare")
@click.argument("site_id")
def unshare_site_command(site_id: str) -> None:
    """Revoke SITE_ID's dashboard link at once."""
    if not shares.unshare(mongo.db, site_id):
        raise not_registered(site_id)
    click.echo(f"Site {site_id} has no dashboard link now")


@click.group("key")
def key_group() -> None:
    """Read keys for the reporting service, server keys for ingestion (AUTH_MODE=keys)."""


@key_group.command("create")
@click.argument("site_id", required=False)
@click.option("--operator", is_flag=True, help="A key that reads every site and /health/pipeline.")
@click.option(
    "--server",
    is_flag=True,
    help="A server key instead: servers send SITE_ID's events with it (Authorization: Bearer).",
)
def create_key_command(site_id: str | None, operator: bool, server: bool) -> None:
    """Make a read key for SITE_ID (or, with --operator, for every site), or with --server a
    server key of SITE_ID; print it once, as the last line."""
    if server and operator:
        raise click.UsageError("A server key belongs to one site: give SITE_ID, not --operator")
    if operator == (site_id is not None):
        raise click.UsageError("Give either SITE_ID or --operator")
    if site_id is not None and not sites.is_registered(mongo.db, site_id):
        raise click.ClickException(f"No site {site_id} is registered: flask site add {site_id} --domain ...")
    key = keys.create_key(mongo.db, site_id, sites.SERVER if server else sites.READ)
    kind = "Server key" if server else "Key"
    owner = f"site {site_id}" if site_id else "the operator"
    click.echo(f"{kind} {key.key_id} for {owner}; it is shown only now, store it safely:")
    click.echo(key.secret)


@key_group.command("list")
@click.argument("site_id", required=False)
def list_keys_command(site_id: str | None) -> None:
    """The keys (ids, never secrets) of SITE_ID, or of every site and the operator: id,
    site, creation time and kind (read or server)."""
    for key in sites.keys(mongo.db, site_id):
        owner = key.site_id or "(operator)"
        click.echo(f"{key.key_id}\t{owner}\t{key.created_at:%Y-%m-%dT%H:%M:%SZ}\t{key.kind}")


@key_group.command("revoke")
@click.argument("key_id")
def revoke_key_command(key_id: str) -> None:
    """Delete the key KEY_ID; services stop accepting it within KEY_CACHE_SECONDS (a read key)
    or REGISTRY_REFRESH_SECONDS (a server key)."""
    if not sites.revoke_key(mongo.db, key_id):
        raise click.ClickException(f"No key {key_id}")
    click.echo(f"Revoked key {key_id}")
