"""Property tests of the gzip reader: any bytes are a decoded body within the size limit, or
a 400 / 413 in the contract's shape, never another exception."""

import gzip
import json
import zlib

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge, UnsupportedMediaType

from app.ingestion.bodies import MAX_GZIP_MEMBERS, decode_content, gunzip
from app.ingestion.views import committer

bounded = settings(max_examples=200, deadline=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)
limits = st.integers(min_value=0, max_value=4096)


def compress(data: bytes, level: int = 6) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def damaged(data: bytes, position: int, byte: int) -> bytes:
    """`data` with one byte replaced: a stream that gets past gzip's header, then breaks."""
    position %= max(len(data), 1)
    return data[:position] + bytes([byte]) + data[position + 1 :]


gzip_like = (
    st.binary(max_size=512)
    | st.binary(max_size=512).map(compress)
    | st.builds(lambda data, cut: compress(data)[:cut], st.binary(max_size=512), st.integers(0, 600))
    | st.builds(damaged, st.binary(max_size=512).map(compress), st.integers(0, 600), st.integers(0, 255))
    | st.builds(lambda data, tail: compress(data) + tail, st.binary(max_size=256), st.binary(max_size=64))
)


def refused(call, *args) -> bytes | HTTPException:
    """What `call` returns, or the 4xx it refuses with (any other exception fails the test)."""
    try:
        return call(*args)
    except (BadRequest, RequestEntityTooLarge, UnsupportedMediaType) as refusal:
        return refusal


def outcome(data: bytes, limit: int | None) -> bytes | int:
    """The decoded body, or the status of the refusal, which must say why."""
    result = refused(gunzip, data, limit)
    if isinstance(result, HTTPException):
        assert result.description
        return result.code or 0
    return result


@bounded
@given(gzip_like, st.none() | limits)
@example(b"\x1f\x8b", None)
@example(compress(b"") * (MAX_GZIP_MEMBERS + 1), None)
def test_any_bytes_decode_within_the_limit_or_are_a_4xx(data, limit):
    result = outcome(data, limit)
    if isinstance(result, int):
        assert result in (400, 413)
    else:
        assert limit is None or len(result) <= limit


@bounded
@given(json_values, st.integers(1, 9), limits)
def test_gzip_of_any_json_round_trips_within_the_limit_and_is_413_beyond(value, level, limit):
    body = json.dumps(value).encode()
    result = outcome(compress(body, level), limit)
    assert result == (body if len(body) <= limit else 413)


@bounded
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=MAX_GZIP_MEMBERS + 3))
def test_concatenated_members_decode_to_their_concatenation_up_to_the_member_cap(parts):
    result = outcome(b"".join(map(compress, parts)), None)
    assert result == (b"".join(parts) if len(parts) <= MAX_GZIP_MEMBERS else 400)


@bounded
@given(st.integers(0, 64 * 1024), limits)
def test_a_highly_compressible_body_is_refused_without_inflating_past_the_limit(size, limit):
    """A small stream that expands far (a gzip bomb in miniature) is a 413 beyond the limit."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    data = deflater.compress(b"\0" * size) + deflater.flush()
    assert outcome(data, limit) == (b"\0" * size if size <= limit else 413)


@bounded
@given(st.sampled_from(["gzip", "x-gzip", " GZIP ", "identity", "br", "deflate", "gzip, br", ""]), gzip_like)
def test_any_content_coding_is_decoded_or_a_4xx(coding, data):
    result = refused(decode_content, data, coding, 1024)
    assert isinstance(result, bytes) or result.description


@pytest.fixture
def enqueued(monkeypatch):
    calls: list[list[dict]] = []
    monkeypatch.setattr(committer, "enqueue", calls.append)
    return calls


# The app and the patched queue serve every example alike: sharing them is safe.
@settings(bounded, max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=gzip_like, url=st.sampled_from(["/event", "/events"]))
def test_any_gzip_body_over_http_is_answered_200_or_a_4xx_in_the_contract_shape(
    ingestion, enqueued, data, url
):
    """The whole request path: headers, size limits, gzip, JSON, schemas."""
    response = ingestion.post(
        url, data=data, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert response.status_code in (200, 400, 413)
    if response.status_code != 200:
        body = response.get_json()
        assert body["status"] == "error"
        assert body["message"]
