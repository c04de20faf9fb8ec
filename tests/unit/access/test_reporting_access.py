"""Reporting with AUTH_MODE=keys: a site's data needs that site's read key."""

import pytest

from tools.factories import make_event

STATS = "/stats?site_id=shop&date=2025-11-15"
SITE_ENDPOINTS = [
    STATS,
    "/stats/aggregated?site_id=shop&date=2025-11-15",
    "/stats/timeseries?site_id=shop&start=2025-11-15&end=2025-11-16",
    "/stats/breakdown?site_id=shop&date=2025-11-15&by=path",
    "/stats/realtime?site_id=shop",
    "/events/export?site_id=shop&start=2025-11-15&end=2025-11-16",
    "/stats/export?site_id=shop&start=2025-11-15&end=2025-11-16",
]
SITE_PIPELINE = "/health/pipeline?site_id=shop&date=2025-11-15"


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("url", [*SITE_ENDPOINTS, SITE_PIPELINE, "/health/pipeline"])
def test_every_data_endpoint_without_a_key_is_401(keyed_reporting, url):
    response = keyed_reporting.get(url)
    assert response.status_code == 401
    assert response.get_json() == {
        "status": "error",
        "message": "Missing read key: send Authorization: Bearer <key>",
    }
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer ak_wrong", "Basic dXNlcjpwYXNz", "Bearer", "ak_wrong"])
def test_a_wrong_key_or_scheme_is_401(keyed_reporting, site_key, header):
    site_key("shop")
    response = keyed_reporting.get(STATS, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.get_json()["status"] == "error"


@pytest.mark.parametrize("url", SITE_ENDPOINTS)
def test_the_sites_key_reads_every_endpoint_of_its_site(keyed_reporting, site_key, url):
    response = keyed_reporting.get(url, headers=bearer(site_key("shop")))
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("url", SITE_ENDPOINTS)
def test_another_sites_key_is_403(keyed_reporting, site_key, url):
    site_key("shop")
    response = keyed_reporting.get(url, headers=bearer(site_key("other")))
    assert response.status_code == 403
    assert response.get_json() == {"status": "error", "message": "This key does not give access to site shop"}


def test_the_scheme_is_case_insensitive(keyed_reporting, site_key):
    key = site_key("shop")
    assert keyed_reporting.get(STATS, headers={"Authorization": f"bearer {key}"}).status_code == 200


def test_pipeline_totals_need_an_operator_key(keyed_reporting, site_key, cli):
    response = keyed_reporting.get("/health/pipeline", headers=bearer(site_key("shop")))
    assert response.status_code == 403
    assert response.get_json()["message"] == "Without site_id this needs an operator key"
    operator = cli("key", "create", "--operator").splitlines()[-1]
    assert keyed_reporting.get("/health/pipeline", headers=bearer(operator)).status_code == 200
    assert keyed_reporting.get(STATS, headers=bearer(operator)).status_code == 200


def test_the_pipeline_of_one_site_needs_an_operator_key_too(keyed_reporting, site_key, cli):
    """Queue, backlog, lag and dead letters are every site's: a site's key reads none of them."""
    response = keyed_reporting.get(SITE_PIPELINE, headers=bearer(site_key("shop")))
    assert response.status_code == 403
    assert response.get_json() == {"status": "error", "message": "Only an operator key reads this"}
    operator = cli("key", "create", "--operator").splitlines()[-1]
    assert keyed_reporting.get(SITE_PIPELINE, headers=bearer(operator)).status_code == 200


def test_health_stays_open(keyed_reporting):
    assert keyed_reporting.get("/health").status_code == 200


def test_the_openapi_document_is_open(keyed_reporting):
    assert keyed_reporting.get("/openapi.json").status_code == 200


def test_a_revoked_key_is_refused_once_its_cache_entry_expires(keyed_reporting, site_key, cli, monkeypatch):
    from app.access import keys

    now = [1000.0]
    monkeypatch.setattr(keys.time, "monotonic", lambda: now[0])
    key = site_key("shop")
    assert keyed_reporting.get(STATS, headers=bearer(key)).status_code == 200
    key_id = cli("key", "list", "shop").split()[0]
    cli("key", "revoke", key_id)
    now[0] += 31  # past KEY_CACHE_SECONDS' default
    assert keyed_reporting.get(STATS, headers=bearer(key)).status_code == 401


def test_open_mode_needs_no_key(reporting):
    assert reporting.get(STATS).status_code == 200
    assert reporting.get("/health/pipeline").status_code == 200


def test_a_sites_key_cannot_read_another_sites_cached_answer_by_repeating_site_id(
    keyed_reporting, site_key, store
):
    """With one rollup generation each, `site_id=shop&site_id=blog` and
    `site_id=blog&site_id=shop` made one cache key: blog's key read shop's answer."""
    store([make_event(site_id="shop"), make_event(site_id="shop", path="/secret")])
    store([make_event(site_id="blog")])
    shop_key, blog_key = site_key("shop"), site_key("blog")
    url = "/stats?site_id={}&site_id={}&date=2025-11-15"
    shop_asks = keyed_reporting.get(url.format("shop", "blog"), headers=bearer(shop_key))
    blog_asks = keyed_reporting.get(url.format("blog", "shop"), headers=bearer(blog_key))
    assert (shop_asks.status_code, blog_asks.status_code) == (400, 400)
    assert "/secret" not in blog_asks.get_data(as_text=True)


QUERY = {"site_id": "shop", "metrics": ["visitors"], "date_range": ["2025-11-15", "2025-11-15"]}


def test_the_query_api_takes_the_sites_key_for_the_site_its_body_names(keyed_reporting, site_key):
    key = site_key("shop")
    response = keyed_reporting.post("/api/v2/query", json=QUERY, headers=bearer(key))
    assert response.status_code == 200, response.get_json()
    assert keyed_reporting.post("/api/v2/query", json=QUERY).status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (QUERY, "This key does not give access to site shop"),
        ({**QUERY, "site_id": None}, "Without site_id this needs an operator key"),
        ("not an object", "Without site_id this needs an operator key"),
    ],
)
def test_the_query_api_refuses_a_key_for_another_site_than_its_body_names(
    keyed_reporting, site_key, body, message
):
    site_key("shop")
    response = keyed_reporting.post("/api/v2/query", json=body, headers=bearer(site_key("other")))
    assert response.status_code == 403
    assert response.get_json() == {"status": "error", "message": message}


def test_the_query_api_ignores_a_site_id_parameter_for_the_bodys(keyed_reporting, site_key):
    site_key("shop")
    response = keyed_reporting.post(
        "/api/v2/query?site_id=other", json=QUERY, headers=bearer(site_key("other"))
    )
    assert response.status_code == 403


def test_a_query_body_too_large_to_read_is_a_413_with_a_key_too(keyed_reporting, site_key):
    body = {**QUERY, "filters": [["is", "event:page", ["/" * 70000]]]}
    response = keyed_reporting.post("/api/v2/query", json=body, headers=bearer(site_key("shop")))
    assert response.status_code == 413
    assert response.get_json()["status"] == "error"
