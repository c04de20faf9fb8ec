"""The dashboard's pages on mongomock: who may see a site, what the session cookie is, and
that what the page shows is what the API answers, as text."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from html import escape as html_escape
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo.database import Database
from pymongo.errors import ExecutionTimeout

from app import create_app
from app.ingestion import bots
from app.settings import Settings
from reporting.dashboard import panels
from reporting.views import QueryTimeLimitError
from tests.unit.reporting.test_filters import traffic
from tools.factories import make_event, seed_example_events

SITE, OTHER = "site-a", "site-b"
DAY = {"start": "2025-11-15", "end": "2025-11-15"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def dashboard_settings(settings: Settings) -> Settings:
    # Keys are verified afresh on every request, so a revoked one stops at once.
    return replace(settings, auth_mode="keys", secret_key="unit-test-secret", key_cache_seconds=0)


@pytest.fixture
def app(dashboard_settings: Settings, db: Database[Any], counter_store: fakeredis.FakeRedis) -> Flask:
    return create_app("reporting", dashboard_settings)


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def cli(app: Flask) -> Callable[..., str]:
    runner = app.test_cli_runner()

    def run(*args: str) -> str:
        result = runner.invoke(args=list(args))
        assert result.exit_code == 0, result.output
        return result.output

    return run


@pytest.fixture
def keys(cli: Callable[..., str]) -> dict[str, str]:
    """Read keys of the two registered sites."""
    for site in (SITE, OTHER):
        cli("site", "add", site, "--domain", f"{site}.test")
    return {site: cli("key", "create", site).splitlines()[-1] for site in (SITE, OTHER)}


def sign_in(browser: FlaskClient, site: str, key: str, **form: str) -> Any:
    page = browser.get(f"/dashboard/{site}")
    token = CSRF.search(page.text)
    assert token, page.text
    return browser.post(f"/dashboard/{site}", data={"csrf": token[1], "key": key, **form})


def figure(page: str, name: str) -> int:
    found = re.search(rf'data-figure="{name}">\s*<h2>[^<]*</h2>\s*<p class="value">([\d,]+)</p>', page)
    assert found, f"no figure {name}"
    return int(found[1].replace(",", ""))


def table(page: str, by: str) -> list[tuple[str, int]]:
    """A table's rows as (value, views), its values unescaped as a browser shows them (the
    text of a row's link)."""
    body = page.split(f'data-by="{by}">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(
        r'<td class="value">(?:<a [^>]*>)?(.*?)(?:</a>)?</td><td class="num">([\d,]+)</td>', body
    )
    return [(unescape(value), int(views.replace(",", ""))) for value, views in rows]


def test_the_sign_in_form_sets_a_strict_http_only_cookie_for_the_dashboard_only(browser, keys):
    page = browser.get(f"/dashboard/{SITE}")
    assert page.status_code == 200
    assert 'name="key"' in page.text
    assert "data-figure" not in page.text
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith("dashboard_session=")
    assert {"HttpOnly", "SameSite=Strict", "Path=/dashboard"} <= {part.strip() for part in cookie.split(";")}
    assert "Secure" not in cookie  # plain HTTP here; over HTTPS it is Secure


def test_over_https_the_cookie_is_secure(browser, keys):
    page = browser.get(f"/dashboard/{SITE}", base_url="https://localhost")
    assert "Secure" in {part.strip() for part in page.headers["Set-Cookie"].split(";")}


def test_signed_in_with_the_sites_key_the_figures_are_the_apis(browser, store, keys):
    store([*seed_example_events(SITE), make_event(site_id=SITE, event_type="signup", props={"plan": "pro"})])
    signed = sign_in(browser, SITE, keys[SITE])
    assert signed.status_code == 303
    page = browser.get(f"/dashboard/{SITE}", query_string=DAY)
    assert page.status_code == 200
    headers = {"Authorization": f"Bearer {keys[SITE]}"}
    stats = browser.get("/stats", query_string={"site_id": SITE, **DAY}, headers=headers).get_json()
    views = browser.get(
        "/stats", query_string={"site_id": SITE, "event_type": "page_view", **DAY}, headers=headers
    ).get_json()
    assert figure(page.text, "events") == stats["total_views"] == 5
    assert figure(page.text, "visitors") == stats["unique_users"]
    assert figure(page.text, "page_views") == views["total_views"] == 4
    for by in ("path", "entry_page", "exit_page", "event_type", "prop:plan"):
        answer = browser.get(
            "/stats/breakdown", query_string={"site_id": SITE, "by": by, **DAY}, headers=headers
        ).get_json()
        assert table(page.text, by) == [(row["value"], row["views"]) for row in answer["results"]]
    assert table(page.text, "prop:plan") == [("pro", 1)]
    assert sum(visits for _, visits in table(page.text, "entry_page")) > 0


def test_the_chart_carries_the_timeseries_answer(browser, store, keys):
    store(seed_example_events(SITE))
    sign_in(browser, SITE, keys[SITE])
    page = browser.get(f"/dashboard/{SITE}", query_string={**DAY, "tz": "Europe/Berlin"})
    series = browser.get(
        "/stats/timeseries",
        query_string={"site_id": SITE, "interval": "hour", "tz": "Europe/Berlin", **DAY},
        headers={"Authorization": f"Bearer {keys[SITE]}"},
    ).get_json()["series"]
    rows = re.findall(
        r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td></tr>", page.text
    )
    assert [(start, int(views), int(users)) for start, views, users in rows] == [
        (point["start"], point["views"], point["unique_users"]) for point in series
    ]


def test_a_key_of_another_site_never_shows_this_one(browser, store, keys):
    store(seed_example_events(SITE))
    refused = sign_in(browser, SITE, keys[OTHER])
    assert refused.status_code == 403
    assert f"This key does not read site {SITE}" in refused.text
    assert sign_in(browser, OTHER, keys[OTHER]).status_code == 303
    page = browser.get(f"/dashboard/{SITE}", query_string=DAY)
    assert page.status_code == 403
    assert "data-figure" not in page.text
    assert "/pricing" not in page.text


def test_a_sign_in_without_the_sessions_form_token_is_refused(browser, keys):
    browser.get(f"/dashboard/{SITE}")
    forged = browser.post(f"/dashboard/{SITE}", data={"csrf": "forged", "key": keys[SITE]})
    assert forged.status_code == 400
    assert "data-figure" not in browser.get(f"/dashboard/{SITE}").text


def test_a_wrong_key_is_refused(browser, keys):
    refused = sign_in(browser, SITE, "ak_not-a-key")
    assert refused.status_code == 403
    assert "This is not a read key" in refused.text


def test_signing_out_ends_the_session(browser, keys):
    sign_in(browser, SITE, keys[SITE])
    page = browser.get(f"/dashboard/{SITE}").text
    assert sign_in_token(page)
    browser.post(f"/dashboard/{SITE}", data={"csrf": sign_in_token(page), "action": "sign-out"})
    assert "data-figure" not in browser.get(f"/dashboard/{SITE}").text


def sign_in_token(page: str) -> str:
    found = CSRF.search(page)
    assert found
    return found[1]


def test_a_revoked_key_no_longer_shows_the_site(browser, cli, keys):
    sign_in(browser, SITE, keys[SITE])
    key_id = cli("key", "list", SITE).split()[0]
    cli("key", "revoke", key_id)
    assert "data-figure" not in browser.get(f"/dashboard/{SITE}").text


def test_the_session_holds_no_key(browser, keys):
    signed = sign_in(browser, SITE, keys[SITE])
    assert keys[SITE] not in signed.headers["Set-Cookie"]


def test_paths_and_props_from_clients_render_as_text(browser, store, keys):
    script = "/<script>alert(1)</script>"
    image = '<img src=x onerror="alert(2)">'
    store([make_event(site_id=SITE, path=script, props={"note": image})])
    sign_in(browser, SITE, keys[SITE])
    page = browser.get(f"/dashboard/{SITE}", query_string=DAY).text
    assert "<script>alert" not in page
    assert "<img" not in page
    assert table(page, "path") == [(script, 1)]
    assert table(page, "prop:note") == [(image, 1)]


def test_every_page_forbids_inline_scripts_and_framing(browser, keys):
    headers = browser.get(f"/dashboard/{SITE}").headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"


def test_a_share_link_shows_its_site_read_only_until_revoked(browser, store, cli, keys):
    store(seed_example_events(SITE))
    link = cli("site", "share", SITE).splitlines()[-1]
    shared = browser.get(f"{link}&start={DAY['start']}&end={DAY['end']}")
    assert shared.status_code == 200
    assert figure(shared.text, "events") == 4
    assert "Sign out" not in shared.text
    assert "Shared link, read-only" in shared.text
    token = link.split("share=", 1)[1]
    assert browser.get(f"/dashboard/{OTHER}", query_string={"share": token}).status_code == 403
    assert (
        browser.get(
            "/stats", query_string={"site_id": SITE, **DAY}, headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 401
    )
    cli("site", "unshare", SITE)
    assert browser.get(link).status_code == 403


def test_a_new_share_link_revokes_the_last(browser, cli, keys):
    first = cli("site", "share", SITE).splitlines()[-1]
    second = cli("site", "share", SITE).splitlines()[-1]
    assert browser.get(first).status_code == 403
    assert browser.get(second).status_code == 200


def test_without_a_secret_key_sign_in_is_off_but_share_links_work(
    dashboard_settings, db, counter_store, cli, keys
):
    browser = create_app("reporting", replace(dashboard_settings, secret_key="")).test_client()
    page = browser.get(f"/dashboard/{SITE}")
    assert page.status_code == 503
    assert "SECRET_KEY" in page.text
    assert "Set-Cookie" not in page.headers
    assert browser.get(cli("site", "share", SITE).splitlines()[-1]).status_code == 200


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"start": "2025-11-20", "end": "2025-11-01"}, "end must not be before start"),
        ({"start": "2025-11-01", "end": "2025-11-02", "tz": "Mars/Base"}, "Not a known IANA time zone"),
        ({"end": "15-11-2025"}, "Not a valid date"),
        ({"filters": "planet==Mars"}, "Unknown dimension"),
    ],
)
def test_a_period_not_understood_is_said_and_the_last_week_shown(browser, keys, query, message):
    sign_in(browser, SITE, keys[SITE])
    page = browser.get(f"/dashboard/{SITE}", query_string=query)
    assert page.status_code == 400
    assert message in page.text.split('id="form-errors"', 1)[1].split("</div>", 1)[0]
    assert figure(page.text, "events") == 0


def test_bots_dropped_are_the_sites_over_the_periods_days(browser, counter_store, keys):
    bots.count_dropped(
        counter_store,
        {
            (SITE, "2025-11-14", bots.CRAWLER): 5,
            (SITE, "2025-11-15", bots.CRAWLER): 2,
            (OTHER, "2025-11-15", bots.HEADLESS): 7,
        },
    )
    sign_in(browser, SITE, keys[SITE])
    page = browser.get(f"/dashboard/{SITE}", query_string=DAY).text
    assert dict(table(page, "bots")) == {"crawler": 2, "headless": 0, "automation": 0, "no user agent": 0}


def test_a_period_over_its_time_limit_gets_a_page_saying_so(browser, keys, monkeypatch):
    def too_slow(*args: Any) -> None:
        raise QueryTimeLimitError("took longer than 10 s")

    monkeypatch.setattr(panels, "build", too_slow)
    sign_in(browser, SITE, keys[SITE])
    page = browser.get(f"/dashboard/{SITE}")
    assert page.status_code == 503
    assert "took longer than their time limit" in page.text


def test_with_open_access_the_dashboard_needs_no_key(reporting, store):
    """AUTH_MODE=open, as the API: anyone reads any site."""
    store(seed_example_events(SITE))
    page = reporting.get(f"/dashboard/{SITE}", query_string=DAY)
    assert page.status_code == 200
    assert figure(page.text, "events") == 4
    assert "Sign out" not in page.text


def test_a_site_id_with_a_slash_has_a_dashboard_too(browser, store, cli):
    cli("site", "add", "shop/eu")
    store(seed_example_events("shop/eu"))
    link = cli("site", "share", "shop/eu").splitlines()[-1]
    page = browser.get(f"{link}&start={DAY['start']}&end={DAY['end']}")
    assert page.status_code == 200
    assert figure(page.text, "events") == 4


def test_visits_too_many_to_read_in_time_leave_the_rest_of_the_page(browser, store, keys, monkeypatch):
    store(seed_example_events(SITE))
    sign_in(browser, SITE, keys[SITE])
    monkeypatch.setattr(panels, "VISIT_TABLES_SECONDS", 0.0)

    def outlasting(*args: Any) -> Any:
        raise ExecutionTimeout("operation exceeded time limit", 50)

    monkeypatch.setattr(panels.queries, "breakdown", outlasting)
    page = browser.get(f"/dashboard/{SITE}", query_string=DAY)
    assert page.status_code == 200
    assert figure(page.text, "events") == 4
    assert table(page.text, "path")
    for by in ("entry_page", "exit_page"):
        assert f'<p class="note" data-by="{by}">' in page.text


TWO_DAYS = {"start": "2025-11-14", "end": "2025-11-15"}


def link_of(page: str, by: str, value: str) -> str:
    """The address a row of a table links to."""
    body = page.split(f'data-by="{by}">', 1)[1].split("</table>", 1)[0]
    found = re.search(rf'<a href="([^"]+)"[^>]*>{re.escape(html_escape(value))}</a>', body)
    assert found, f"no link for {value} in {by}"
    return unescape(found[1])


def test_clicking_rows_filters_every_figure_and_table_as_the_api_does(
    dashboard_settings, db, counter_store, store, keys
):
    """Two clicks, each page checked against the API's answers (more than the key's default
    rate limit a second)."""
    store(traffic(site_id=SITE))
    browser = create_app(
        "reporting", replace(dashboard_settings, reporting_rate_limit="1000/second")
    ).test_client()
    sign_in(browser, SITE, keys[SITE])
    headers = {"Authorization": f"Bearer {keys[SITE]}"}

    def api(path: str, filters: str, **query: str) -> Any:
        asked = {"site_id": SITE, "filters": filters, **TWO_DAYS, **query}
        return browser.get(path, query_string=asked, headers=headers).get_json()

    page = browser.get(f"/dashboard/{SITE}", query_string=TWO_DAYS).text
    for filters, row in [
        ("source==Google", ("source", "Google")),
        ("source==Google;path==/pricing", ("path", "/pricing")),
    ]:
        address = link_of(page, *row)
        page = browser.get(address).text
        assert parse_qs(urlsplit(address).query)["filters"] == [filters]
        stats = api("/stats", filters)
        assert 0 < stats["total_views"] < 240
        assert figure(page, "events") == stats["total_views"]
        assert figure(page, "visitors") == stats["unique_users"]
        assert figure(page, "page_views") == api("/stats", filters, event_type="page_view")["total_views"]
        for by in ("path", "source", "browser", "country", "event_type", "prop:plan"):
            rows = api("/stats/breakdown", filters, by=by)["results"]
            assert table(page, by) == [(row["value"], row["views"]) for row in rows], by
        series = api("/stats/timeseries", filters, interval="hour")["series"]
        chart = re.findall(
            r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td></tr>", page
        )
        assert [(start, int(views), int(users)) for start, views, users in chart] == [
            (point["start"], point["views"], point["unique_users"]) for point in series
        ]
        assert 'data-by="entry_page">Entry page: not shown under filters' in page
        assert f'name="filters" value="{html_escape(filters)}"' in page
    assert "Filtered by source is Google; path is /pricing (" in page
    remove = re.search(r'<a href="([^"]+)" id="remove-filters">remove</a>', page)
    assert remove, "a link to remove the filters"
    unfiltered = browser.get(unescape(remove[1])).text
    assert "Filtered by" not in unfiltered
    assert figure(unfiltered, "events") == 240


def test_a_rows_link_escapes_its_value_as_the_filter_syntax_says(browser, store, keys):
    odd = "/a;b|c\\d==e"
    store(
        [
            make_event(site_id=SITE, path=path, timestamp="2025-11-15T10:00:00Z")
            for path in (odd, odd, "/a", "/a;b")
        ]
    )
    sign_in(browser, SITE, keys[SITE])
    page = browser.get(f"/dashboard/{SITE}", query_string=DAY).text
    address = link_of(page, "path", odd)
    assert parse_qs(urlsplit(address).query)["filters"] == ["path==/a\\;b\\|c\\\\d==e"]
    filtered = browser.get(address).text
    assert figure(filtered, "events") == 2
    assert table(filtered, "path") == [(odd, 2)]


def test_a_filtered_period_over_the_event_limit_says_so_with_a_way_back(
    dashboard_settings, db, counter_store, store, keys
):
    store(traffic(site_id=SITE))
    limited = create_app(
        "reporting", replace(dashboard_settings, reporting_filter_max_events=100)
    ).test_client()
    sign_in(limited, SITE, keys[SITE])
    page = limited.get(f"/dashboard/{SITE}", query_string={**TWO_DAYS, "filters": "source==Google"})
    assert page.status_code == 400
    assert "REPORTING_FILTER_MAX_EVENTS" in page.text
    back = re.search(r'<a href="([^"]+)" id="unfiltered">', page.text)
    assert back, "a link to the page without filters"
    assert "filters" not in back[1]
    assert figure(limited.get(unescape(back[1])).text, "events") == 240
