"""The dashboard's pages: `GET /dashboard/SITE` shows a period of the site (or the sign-in
form), `POST /dashboard/SITE` signs in or out. Server-rendered; JavaScript draws the chart
only."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from app.access.keys import key_cache
from app.extensions import mongo, redis_store
from app.settings import current_settings
from reporting import filters
from reporting.dashboard import access, panels
from reporting.periods import Period
from reporting.queries import TooManyEventsError
from reporting.schemas import UTC_ZONE, FilteredQuerySchema, TimeZone
from reporting.views import QueryTimeLimitError, within_time_limit

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/dashboard",
)

FORM_FIELDS = ("start", "end", "tz", "filters")
# The period shown when the form names none: the last week, today's included.
DEFAULT_DAYS = 7
PRESETS = {"Today": 1, "7 days": 7, "30 days": 30, "90 days": 90}
period_schema = FilteredQuerySchema(only=("site_id", *FORM_FIELDS))
# Scripts, styles and images from this service only, no inline script, no framing; and a
# share token in the address is sent to no other site.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@bp.record_once
def init_sessions(state: BlueprintSetupState) -> None:
    app = cast(Flask, state.app)
    access.init_app(app, app.extensions["settings"].secret_key)


@bp.app_template_filter("count")
def count(number: int) -> str:
    """A count as the page shows it, with thousands separated by commas."""
    return f"{number:,}"


@bp.after_request
def secure(response: Response) -> Response:
    """The pages' headers; static files keep Flask's (revalidated by ETag)."""
    if request.endpoint != "dashboard.static":
        response.headers.update(SECURITY_HEADERS)
    return response


@bp.errorhandler(QueryTimeLimitError)
def too_long(_: QueryTimeLimitError) -> ResponseReturnValue:
    message = "These figures took longer than their time limit: choose a shorter period."
    site_id = (request.view_args or {}).get("site_id")
    return render_template("dashboard/message.html", site_id=site_id, message=message), 503


@bp.errorhandler(TooManyEventsError)
def too_many_to_filter(error: TooManyEventsError) -> ResponseReturnValue:
    site_id = (request.view_args or {}).get("site_id", "")
    period, _ = period_asked(site_id)
    unfiltered = dashboard_url(site_id, page_query(period, request.args.get("share"), None))
    message = f"Filtered figures are counted from the raw events. {error}, or remove the filter."
    page = render_template("dashboard/message.html", site_id=site_id, message=message, link=unfiltered)
    return page, 400


def today_in(zone_name: str) -> date:
    try:
        zone = TimeZone().deserialize(zone_name)
    except ValidationError:
        zone = UTC_ZONE
    return datetime.now(zone).date()


def period_asked(site_id: str) -> tuple[Period, dict[str, Any]]:
    """The period the form asks for (by default the last DEFAULT_DAYS days to `end`, or to
    today), and the form's errors, with which the default period in UTC is shown instead."""
    asked = {name: request.args[name] for name in FORM_FIELDS if request.args.get(name)}
    try:
        end = date.fromisoformat(asked["end"]) if "end" in asked else today_in(asked.get("tz", "UTC"))
        start = asked.get("start") or (end - timedelta(days=DEFAULT_DAYS - 1)).isoformat()
        query = {"site_id": site_id, **asked, "start": start, "end": asked.get("end", end.isoformat())}
        period: Period = period_schema.load(query)["period"]
        return period, {}
    except ValidationError as error:
        errors = error.normalized_messages()
    except ValueError:
        errors = {"end": ["Not a valid date."]}
    last = datetime.now(UTC_ZONE).date()
    return Period(site_id, last - timedelta(days=DEFAULT_DAYS - 1), last, UTC_ZONE), errors


def sign_in_page(site_id: str, message: str | None = None, status: int = 200) -> ResponseReturnValue:
    if not access.sessions_on():
        message = "Signing in is off: this reporting service has no SECRET_KEY (docs/dashboard.md)."
        return render_template("dashboard/message.html", site_id=site_id, message=message), 503
    form = {"csrf": access.csrf_token()}
    return render_template("dashboard/sign_in.html", site_id=site_id, message=message, form=form), status


@bp.get("/dashboard/<path:site_id>")
def dashboard(site_id: str) -> ResponseReturnValue:
    share = request.args.get("share")
    if not access.may_read(site_id, share):
        if share is not None:
            message = "This link is not valid any more: ask for a new one, or sign in with a read key."
            return render_template("dashboard/message.html", site_id=site_id, message=message), 403
        if access.sessions_on() and access.signed_in_key() is not None:
            return sign_in_page(
                site_id, f"Your key does not read site {site_id}: sign in with one that does.", 403
            )
        return sign_in_page(site_id)
    period, errors = period_asked(site_id)
    settings = current_settings()
    shown = within_time_limit(
        lambda: panels.build(mongo.db, redis_store.client, period, settings.event_max_ahead_seconds)
    )
    signed_in = share is None and settings.auth_mode == "keys"
    asked_filters = request.args["filters"] if period.filters else None

    def filter_url(by: str, value: str) -> str | None:
        """The page filtered by this row too; None for a table whose rows filters cannot name."""
        if not filters.linkable(by):
            return None
        return dashboard_url(site_id, page_query(period, share, filters.adding(asked_filters, by, value)))

    return render_template(
        "dashboard/dashboard.html",
        site_id=site_id,
        board=shown,
        errors=errors,
        share=share,
        presets=presets(period, share, asked_filters),
        csrf=access.csrf_token() if signed_in else None,
        filters=asked_filters,
        filtered_by=filters.words(period.filters),
        unfiltered=dashboard_url(site_id, page_query(period, share, None)),
        filter_url=filter_url,
    ), (400 if errors else 200)


def dashboard_url(site_id: str, query: dict[str, str]) -> str:
    """The site's dashboard with this query string."""
    path = url_for(".dashboard", site_id=site_id)
    return f"{path}?{urlencode(query)}" if query else path


def page_query(period: Period, share: str | None, filters: str | None, **days: str) -> dict[str, str]:
    """The query string of the page of this period (or of `days`: `start` and `end`), share
    link and filters."""
    query = {"start": period.first_day.isoformat(), "end": period.last_day.isoformat(), **days}
    query["tz"] = period.tz.key
    if filters:
        query["filters"] = filters
    if share is not None:
        query["share"] = share
    return query


def presets(period: Period, share: str | None, filters: str | None) -> dict[str, str]:
    """Links to the last days of each preset, in the period's time zone, with the page's filters."""
    today = datetime.now(period.tz).date()
    links = {}
    for label, days in PRESETS.items():
        start = (today - timedelta(days=days - 1)).isoformat()
        links[label] = dashboard_url(
            period.site_id, page_query(period, share, filters, start=start, end=today.isoformat())
        )
    return links


@bp.post("/dashboard/<path:site_id>")
def sign_in_or_out(site_id: str) -> ResponseReturnValue:
    """The sign-in form (a read key) or the sign-out button; back to the page after either."""
    if not access.sessions_on():
        return sign_in_page(site_id)
    if not access.csrf_checked():
        return sign_in_page(site_id, "The form had expired: sign in again.", 400)
    back = redirect(dashboard_url(site_id, request.args.to_dict()), code=303)
    if request.form.get("action") == "sign-out":
        access.sign_out()
        return back
    secret = request.form.get("key", "").strip()
    key = key_cache.verify(mongo.db, secret, current_settings().key_cache_seconds) if secret else None
    if key is None:
        # 403, not 401: a form is no HTTP authentication scheme to challenge with.
        return sign_in_page(site_id, "This is not a read key.", 403)
    if not access.reads(key, site_id):
        return sign_in_page(site_id, f"This key does not read site {site_id}.", 403)
    access.sign_in(secret)
    return back
