"""Request bodies as clients send them: JSON as `application/json`, or as `text/plain` (all
`navigator.sendBeacon` can send without a CORS preflight), optionally gzip-compressed."""

from __future__ import annotations

import json
import zlib
from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

from app.ingestion.body_reader import read_body

GZIP_CODINGS = frozenset({"gzip", "x-gzip"})
# zlib's window-bits value that accepts a gzip header and trailer (and nothing else).
GZIP_WBITS = 16 + zlib.MAX_WBITS
# Concatenated gzip members are valid gzip, but clients write one. zlib hands back what
# follows a member as a copy, so each member costs a copy of the rest: a cap keeps a body of
# tens of thousands of empty members from costing quadratic time.
MAX_GZIP_MEMBERS = 64


def json_body() -> Any:
    """The request body parsed as JSON, or the contract's 415 / 413 / 408 / 400.

    The size limit is `request.max_content_length`; it bounds a gzip body both before and
    after decompression. The body must arrive within the body read timeout (408).
    """
    if not request.is_json and request.mimetype != "text/plain":
        raise UnsupportedMediaType("Content-Type must be application/json (or text/plain)")
    data = read_body(request.max_content_length)
    # A header lookup is all a plain body pays for gzip support.
    if request.content_encoding:
        data = decode_content(data, request.content_encoding, request.max_content_length)
    try:
        return json.loads(data)
    except ValueError:
        raise BadRequest("Request body is not valid JSON") from None
    except RecursionError:  # the parser recurses once per level of nesting
        raise BadRequest("Request body is nested too deeply") from None


def decode_content(data: bytes, coding: str, limit: int | None) -> bytes:
    """Undo a `Content-Encoding`; only gzip is supported (RFC 7694: others are a 415)."""
    coding = coding.strip().lower()
    if coding == "identity":
        return data
    if coding not in GZIP_CODINGS:
        raise UnsupportedMediaType("Content-Encoding must be gzip")
    return gunzip(data, limit)


def gunzip(data: bytes, limit: int | None) -> bytes:
    """Decompress gzip `data`, refusing (413) output beyond `limit` bytes.

    Inflation stops at `limit + 1` bytes, so a gzip bomb costs at most that much memory
    however far it would expand. Concatenated gzip members are valid gzip (RFC 1952), so
    each is inflated in turn.
    """
    out = bytearray()
    remaining = data
    for _ in range(MAX_GZIP_MEMBERS):
        if not remaining:
            return bytes(out)
        inflater = zlib.decompressobj(GZIP_WBITS)
        # max_length=0 would mean "unlimited"; without a limit only the body's own size caps it.
        room = 0 if limit is None else limit + 1 - len(out)
        try:
            out += inflater.decompress(remaining, room)
        except zlib.error:
            raise BadRequest("Request body is not valid gzip") from None
        if limit is not None and len(out) > limit:
            raise RequestEntityTooLarge(f"Request body is larger than {limit} bytes once decompressed")
        if not inflater.eof:
            raise BadRequest("Request body is not valid gzip: it ends early")
        remaining = inflater.unused_data
    if remaining:
        raise BadRequest(f"Request body has more than {MAX_GZIP_MEMBERS} gzip members")
    return bytes(out)
