"""Each service's `/openapi.json`: a valid OpenAPI document that documents every route it serves."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate

# Methods every route answers by itself, not operations of the API.
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
CONTRACT_ERRORS = {
    "ingestion": {"400", "403", "413", "415", "429", "503"},
    "reporting": {"400", "401", "403", "429", "503"},
}

# The drop-in endpoints for other products' clients (docs/dropin.md) and their error bodies.
DROPIN_ERRORS = {
    "/api/send": "UmamiError",
    **dict.fromkeys(("/v1/batch", "/v1/track", "/v1/page"), "SegmentError"),
}
# Plausible's endpoint keeps only its 400 in Plausible's shape.
DROPIN_STATUS_ERRORS = {("/api/event", "400"): "PlausibleErrors"}
GUNICORN_ONLY = {"414", "431"}
# Endpoints of pages for people, not of the API: the dashboard's (docs/dashboard.md).
PAGES = "dashboard."


@pytest.fixture(params=["ingestion", "reporting"])
def service(request: pytest.FixtureRequest) -> tuple[str, FlaskClient]:
    return request.param, request.getfixturevalue(request.param)


def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def served_operations(client: FlaskClient) -> set[tuple[str, str]]:
    """(path in OpenAPI's spelling, method) of every route the app serves."""
    operations = set()
    for rule in client.application.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith(PAGES):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        operations |= {
            (path, method.lower()) for method in rule.methods or () if method not in IMPLICIT_METHODS
        }
    return operations


def documented_operations(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, operations in body["paths"].items() for method in operations}


def test_openapi_document_is_valid(service: tuple[str, FlaskClient]) -> None:
    validate(document(service[1]))


def test_openapi_document_lists_every_route_the_service_serves(service: tuple[str, FlaskClient]) -> None:
    client = service[1]
    assert documented_operations(document(client)) == served_operations(client)


def test_every_question_documents_the_contract_errors_with_the_error_body(
    service: tuple[str, FlaskClient],
) -> None:
    name, client = service
    body = document(client)
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in body["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            errors = {status for status in responses if status.startswith(("4", "5"))}
            if path.startswith(("/event", "/stats")):
                assert errors >= CONTRACT_ERRORS[name], (method, path)
            for status in errors:
                # A drop-in endpoint answers its own errors in its product's shape; gunicorn's
                # refusals, before any endpoint runs, stay in the contract's.
                own = DROPIN_STATUS_ERRORS.get((path, status)) or (
                    DROPIN_ERRORS.get(path) if status not in GUNICORN_ONLY else None
                )
                expected = {"$ref": f"#/components/schemas/{own}"} if own else error_ref
                assert responses[status]["content"]["application/json"]["schema"] == expected, (path, status)


def test_reporting_documents_each_query_parameter_its_schema_loads(reporting: FlaskClient) -> None:
    parameters = document(reporting)["paths"]["/stats/breakdown"]["get"]["parameters"]
    assert {parameter["name"] for parameter in parameters} == {
        "site_id",
        "date",
        "start",
        "end",
        "tz",
        "event_type",
        "filters",
        "compare",
        "by",
        "limit",
        "offset",
    }
    assert all(parameter["in"] == "query" for parameter in parameters)


def test_ingestion_documents_the_event_fields_and_their_limits(ingestion: FlaskClient) -> None:
    event = document(ingestion)["components"]["schemas"]["Event"]
    assert set(event["required"]) == {"site_id", "event_type", "timestamp"}
    assert event["properties"]["site_id"]["maxLength"] == 128
    assert event["properties"]["timestamp"]["format"] == "date-time"


def test_reporting_documents_the_fields_answers_gain_beyond_the_rollups_caps(reporting: FlaskClient) -> None:
    body = document(reporting)
    schemas = body["components"]["schemas"]

    def properties(schema: dict[str, Any]) -> dict[str, Any]:
        """The properties of the component a schema names, by itself or as its one `allOf`."""
        [reference] = schema.get("allOf", [schema])
        found: dict[str, Any] = schemas[reference["$ref"].rsplit("/", 1)[-1]]["properties"]
        return found

    beyond_caps = {
        "/stats": {"other_paths", "other_event_types"},
        "/stats/timeseries": {"other_event_types"},
        "/stats/breakdown": {"other", "other_event_types"},
    }
    for path, names in beyond_caps.items():
        answer = properties(
            body["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        )
        assert names <= answer.keys(), path
        assert all(properties(answer[name])["views"]["type"] == "integer" for name in names), path
