"""Every error case of the contract, over HTTP against the real services."""

import json

import pytest
import requests

from tests.integration.client import TIMEOUT
from tools.factories import make_event

MISSING_PARAMETERS = "Missing required parameters: site_id, date (YYYY-MM-DD)"


def post_raw(url, data, content_type="application/json"):
    return requests.post(f"{url}/event", data=data, headers={"Content-Type": content_type}, timeout=TIMEOUT)


def assert_error(response, status, message=None):
    assert response.status_code == status
    body = response.json()
    assert body["status"] == "error"
    assert body["message"]
    if message is not None:
        assert body["message"] == message
    return body


def test_missing_fields_are_named(ingestion_url):
    body = assert_error(
        post_raw(ingestion_url, "{}"), 400, "Missing required fields: site_id, event_type, timestamp"
    )
    assert set(body["errors"]) == {"site_id", "event_type", "timestamp"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("this is not json", "Request body is not valid JSON"),
        ('{"site_id": "a",', "Request body is not valid JSON"),
        (json.dumps([make_event()]), "Request body must be a JSON object"),
        ("42", "Request body must be a JSON object"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(ingestion_url, payload, message):
    assert_error(post_raw(ingestion_url, payload), 400, message)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("site_id", 123),
        ("event_type", {"kind": "view"}),
        ("path", ["/"]),
        ("user_id", 5),
        ("timestamp", "2025-02-30T10:00:00Z"),
        ("timestamp", "2025-13-01T10:00:00Z"),
        ("timestamp", "not a time"),
        ("site_id", "tab\there"),
    ],
)
def test_a_wrong_type_or_impossible_value_names_the_field(ingestion_url, field, value):
    body = assert_error(post_raw(ingestion_url, json.dumps(make_event(**{field: value}))), 400)
    assert body["message"] == f"Invalid fields: {field}"
    assert list(body["errors"]) == [field]


def test_a_body_over_the_limit_is_413(ingestion_url):
    assert_error(post_raw(ingestion_url, json.dumps(make_event(path="/" + "x" * 70_000))), 413)


def test_a_form_content_type_is_415(ingestion_url):
    assert_error(post_raw(ingestion_url, "site_id=a", "application/x-www-form-urlencoded"), 415)


@pytest.mark.parametrize("endpoint", ["/stats", "/stats/aggregated"])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"site_id": "site-abc-123"},
        {"date": "2025-11-15"},
        {"site_id": "site-abc-123", "date": "2025-02-30"},
        {"site_id": "site-abc-123", "date": "2025-11-31"},
        {"site_id": "site-abc-123", "date": "November 15"},
    ],
)
def test_missing_or_impossible_stats_parameters_are_400(reporting_url, endpoint, params):
    response = requests.get(f"{reporting_url}{endpoint}", params=params, timeout=TIMEOUT)
    assert_error(response, 400, MISSING_PARAMETERS)


def test_an_empty_day_is_zeros_not_404(reporting_url):
    response = requests.get(
        f"{reporting_url}/stats", params={"site_id": "never-seen", "date": "1999-01-01"}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert response.json() == {
        "site_id": "never-seen",
        "date": "1999-01-01",
        "total_views": 0,
        "unique_users": 0,
        "top_paths": [],
    }


@pytest.mark.parametrize("service", ["ingestion", "reporting"])
def test_a_request_line_over_gunicorns_limit_gets_the_error_body(pipeline, service):
    # Refused by gunicorn before the application sees it: found by the fuzz tests.
    response = requests.get(f"{pipeline[service]}/stats?site_id={'a' * 5000}", timeout=TIMEOUT)
    assert response.headers["Content-Type"] == "application/json"
    assert_error(response, 414)


def test_a_header_over_gunicorns_limit_gets_the_error_body(ingestion_url):
    response = requests.post(
        f"{ingestion_url}/event", data="{}", headers={"X-Padding": "p" * 9000}, timeout=TIMEOUT
    )
    assert_error(response, 431)
