"""GET /tracker.js: the built page tag, with an ETag, gzip for browsers that take it, a day
of caching and 304s; within its size budget, and built from the current source."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app.ingestion import tag

ROOT = Path(__file__).resolve().parents[3]
TRACKER = ROOT / "tracker"
# The budget: under 1 KB gzipped (Plausible's core script is about 0.75 KB).
GZIPPED_BUDGET_BYTES = 1024


def test_the_tag_is_served_as_javascript_with_a_day_of_caching(ingestion: FlaskClient) -> None:
    response = ingestion.get("/tracker.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert "Content-Encoding" not in response.headers
    assert response.data == tag.TAG_PATH.read_bytes()
    assert response.headers["ETag"]


def test_a_browser_that_takes_gzip_gets_it_under_an_etag_of_its_own(ingestion: FlaskClient) -> None:
    plain = ingestion.get("/tracker.js")
    zipped = ingestion.get("/tracker.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == plain.data
    assert int(zipped.headers["Content-Length"]) == len(zipped.data) < len(plain.data)
    assert zipped.headers["ETag"] != plain.headers["ETag"]


def test_gzip_refused_by_quality_zero_is_not_sent(ingestion: FlaskClient) -> None:
    response = ingestion.get("/tracker.js", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in response.headers


@pytest.mark.parametrize("encoding", ["", "gzip"])
def test_a_cached_copy_is_revalidated_with_a_304(ingestion: FlaskClient, encoding: str) -> None:
    headers = {"Accept-Encoding": encoding}
    etag = ingestion.get("/tracker.js", headers=headers).headers["ETag"]
    again = ingestion.get("/tracker.js", headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "public, max-age=86400"


def test_another_etag_gets_the_tag_again(ingestion: FlaskClient) -> None:
    response = ingestion.get("/tracker.js", headers={"If-None-Match": '"an-older-build"'})
    assert response.status_code == 200
    assert response.data == tag.TAG_PATH.read_bytes()


def test_the_built_tag_is_under_1_kb_gzipped() -> None:
    size = len(gzip.compress(tag.TAG_PATH.read_bytes(), compresslevel=9))
    print(f"tracker.js: {tag.TAG_PATH.stat().st_size} bytes minified, {size} gzipped")
    assert size < GZIPPED_BUDGET_BYTES


def test_the_committed_build_is_the_build_of_the_current_source(tmp_path: Path) -> None:
    """Rebuilds the tag with the pinned esbuild (`make test` installs it; Node is required,
    so a machine without it fails here rather than skipping) and compares."""
    esbuild = TRACKER / "node_modules" / ".bin" / "esbuild"
    assert shutil.which("node"), "Node is needed to rebuild the tag: install nodejs (make test does)"
    assert esbuild.exists(), "The tag's minifier is not installed: run `make tracker` (or `make test`)"
    built = tmp_path / "tracker.js"
    subprocess.run(
        ["npm", "run", "--silent", "build", "--", f"--outfile={built}"],
        cwd=TRACKER,
        check=True,
        timeout=60,
    )
    assert built.read_bytes() == tag.TAG_PATH.read_bytes(), "Run `make tracker` and commit the result"
