"""`GET /tracker.js`: the page tag, built from `tracker/src/` by `make tracker` and committed,
so serving it needs no Node. Read and compressed once per process; answered from memory with
an ETag per encoding, gzip for the browsers that take it, and a day of caching, so a returning
visitor's browser asks at most daily and gets a 304."""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from flask import Response, request
from flask.typing import ResponseReturnValue

from app.ingestion.views import bp

TAG_PATH = Path(__file__).parent / "static" / "tracker.js"
# A day: a new build reaches every page within a day of its release.
CACHE_CONTROL = "public, max-age=86400"


@dataclass(frozen=True)
class Asset:
    """A file's bytes, as sent and gzip-compressed, and the ETag of the plain bytes."""

    plain: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def read(cls, path: Path) -> Asset:
        plain = path.read_bytes()
        # mtime=0: the same build compresses to the same bytes in every process.
        gzipped = gzip.compress(plain, compresslevel=9, mtime=0)
        return cls(plain, gzipped, hashlib.sha256(plain).hexdigest()[:32])


@functools.cache
def tag() -> Asset:
    return Asset.read(TAG_PATH)


@bp.get("/tracker.js")
def tracker_js() -> ResponseReturnValue:
    asset = tag()
    zipped = request.accept_encodings["gzip"] > 0
    response = Response(asset.gzipped if zipped else asset.plain, mimetype="text/javascript")
    # Each encoding is a representation of its own, with an ETag of its own (RFC 9110, 8.8.3).
    response.set_etag(f"{asset.etag}-gzip" if zipped else asset.etag)
    if zipped:
        response.content_encoding = "gzip"
    response.vary.add("Accept-Encoding")
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response.make_conditional(request)
