"""What browsers send: text/plain beacons, gzip bodies and CORS, on `/event` and `/events`."""

import gzip
import json
import tracemalloc
from dataclasses import replace

import pytest

from app import create_app
from app.ingestion.bodies import MAX_GZIP_MEMBERS, gunzip
from app.ingestion.views import committer
from tests.compression import MIB, gzip_bomb
from tools.factories import make_event

ENDPOINTS = {"/event": make_event(), "/events": [make_event()]}
ORIGIN = "https://shop.example"


@pytest.fixture(autouse=True)
def enqueued(monkeypatch):
    calls: list[list[dict]] = []
    monkeypatch.setattr(committer, "enqueue", calls.append)
    return calls


def post(client, url, data, content_type="application/json", **headers):
    return client.post(url, data=data, content_type=content_type, headers=headers)


def body_of(url):
    return json.dumps(ENDPOINTS[url]).encode()


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8", "application/json"])
def test_json_sent_as_text_plain_is_accepted_like_beacons_send_it(ingestion, enqueued, url, content_type):
    response = post(ingestion, url, body_of(url), content_type)
    assert response.status_code == 200
    assert response.get_json()["status"] == "accepted"
    assert len(enqueued) == 1


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data", "text/html"]
)
def test_other_content_types_are_415(ingestion, enqueued, url, content_type):
    response = post(ingestion, url, body_of(url), content_type)
    assert response.status_code == 415
    assert response.get_json() == {
        "status": "error",
        "message": "Content-Type must be application/json (or text/plain)",
    }
    assert enqueued == []


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "GZIP"])
def test_a_gzip_body_is_decompressed_and_accepted(ingestion, enqueued, url, coding):
    response = post(ingestion, url, gzip.compress(body_of(url)), Content_Encoding=coding)
    assert response.status_code == 200
    assert enqueued[0][0]["site_id"] == "site-abc-123"


def test_concatenated_gzip_members_are_one_body(ingestion, enqueued):
    body = body_of("/event")
    response = post(
        ingestion, "/event", gzip.compress(body[:10]) + gzip.compress(body[10:]), Content_Encoding="gzip"
    )
    assert response.status_code == 200


def test_a_body_of_thousands_of_gzip_members_is_400_without_inflating_them_all(ingestion, enqueued):
    body = gzip.compress(body_of("/events")) + gzip.compress(b"") * 20_000  # 400 KB on the wire
    response = post(ingestion, "/events", body, Content_Encoding="gzip")
    assert response.status_code == 400
    assert response.get_json()["message"] == f"Request body has more than {MAX_GZIP_MEMBERS} gzip members"
    assert enqueued == []


def test_an_identity_content_encoding_is_a_plain_body(ingestion, enqueued):
    assert post(ingestion, "/event", body_of("/event"), Content_Encoding="identity").status_code == 200


@pytest.mark.parametrize("url", ENDPOINTS)
def test_a_gzip_bomb_is_413(ingestion, enqueued, url):
    # 32 KiB on the wire, within every size limit: only the decompressed size is refused.
    response = post(ingestion, url, gzip_bomb(32 * MIB), Content_Encoding="gzip")
    assert response.status_code == 413
    assert "once decompressed" in response.get_json()["message"]
    assert enqueued == []


def test_a_body_just_over_the_limit_once_decompressed_is_413(ingestion, settings):
    body = json.dumps(make_event()).encode().ljust(settings.max_event_bytes + 1)
    response = post(ingestion, "/event", gzip.compress(body), Content_Encoding="gzip")
    assert response.status_code == 413
    assert "once decompressed" in response.get_json()["message"]


def test_a_body_exactly_at_the_limit_once_decompressed_is_accepted(ingestion, settings):
    body = json.dumps(make_event()).encode().ljust(settings.max_event_bytes)
    assert post(ingestion, "/event", gzip.compress(body), Content_Encoding="gzip").status_code == 200


def test_a_gzip_bomb_is_refused_without_inflating_it_in_memory():
    bomb = gzip_bomb(64 * MIB)
    tracemalloc.start()
    try:
        with pytest.raises(Exception, match="once decompressed"):
            gunzip(bomb, MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not gzip at all", "Request body is not valid gzip"),
        (gzip.compress(b'{"a": 1}')[:-6], "Request body is not valid gzip: it ends early"),
        (gzip.compress(b'{"a": 1}') + b"trailing junk", "Request body is not valid gzip"),
    ],
    ids=["garbage", "truncated", "trailing-junk"],
)
@pytest.mark.parametrize("url", ENDPOINTS)
def test_malformed_gzip_is_400(ingestion, enqueued, url, data, message):
    response = post(ingestion, url, data, Content_Encoding="gzip")
    assert response.status_code == 400
    assert response.get_json() == {"status": "error", "message": message}
    assert enqueued == []


def test_an_unsupported_content_encoding_is_415(ingestion):
    response = post(ingestion, "/event", body_of("/event"), Content_Encoding="br")
    assert response.status_code == 415
    assert response.get_json()["message"] == "Content-Encoding must be gzip"


def preflight(client, url, origin=ORIGIN):
    return client.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, content-encoding",
        },
    )


@pytest.mark.parametrize("url", ENDPOINTS)
def test_a_preflight_allows_posting_json_and_gzip_from_any_origin_by_default(ingestion, url):
    response = preflight(ingestion, url)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    assert response.headers["Access-Control-Allow-Headers"].lower() == "content-encoding, content-type"
    assert int(response.headers["Access-Control-Max-Age"]) > 0


@pytest.fixture
def origin_limited(settings, db):
    """An ingestion client whose CORS_ALLOWED_ORIGINS lists two origins."""
    origins = f" {ORIGIN}, https://blog.example "
    return create_app("ingestion", replace(settings, cors_allowed_origins=origins)).test_client()


@pytest.mark.parametrize("url", ENDPOINTS)
def test_an_allowed_origin_gets_its_own_origin_back(origin_limited, url):
    assert preflight(origin_limited, url).headers["Access-Control-Allow-Origin"] == ORIGIN
    response = post(origin_limited, url, body_of(url), "text/plain", Origin=ORIGIN)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response.headers.get_all("Vary")


@pytest.mark.parametrize("url", ENDPOINTS)
def test_a_disallowed_origin_gets_no_cors_headers(origin_limited, url):
    evil = "https://evil.example"
    assert "Access-Control-Allow-Origin" not in preflight(origin_limited, url, evil).headers
    assert "Access-Control-Allow-Origin" not in post(origin_limited, url, body_of(url), Origin=evil).headers


def test_errors_carry_cors_headers_so_pages_can_read_them(ingestion):
    response = post(ingestion, "/events", "[]", Origin=ORIGIN)
    assert response.status_code == 400
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_a_request_without_origin_gets_no_cors_headers(ingestion):
    response = post(ingestion, "/event", body_of("/event"))
    assert not [name for name, _ in response.headers if name.startswith("Access-Control-")]


def test_health_is_not_open_to_other_origins(ingestion):
    assert "Access-Control-Allow-Origin" not in ingestion.get("/health", headers={"Origin": ORIGIN}).headers
