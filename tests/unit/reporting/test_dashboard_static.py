"""The dashboard's static files: served by reporting, and the committed chart built from the
current source with the pinned uPlot and esbuild (`make dashboard`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "dashboard"
STATIC = ROOT / "reporting" / "dashboard" / "static"
BUILT = ("chart.js", "chart.css")


@pytest.mark.parametrize("name", [*BUILT, "dashboard.css"])
def test_the_static_files_are_served(reporting: FlaskClient, name: str) -> None:
    response = reporting.get(f"/static/dashboard/{name}")
    assert response.status_code == 200
    assert response.data == (STATIC / name).read_bytes()
    assert "no-store" not in response.headers.get("Cache-Control", "")


def test_the_committed_chart_is_the_build_of_the_current_source(tmp_path: Path) -> None:
    """Node is required, so a machine without it fails here rather than skipping."""
    esbuild = SOURCE / "node_modules" / ".bin" / "esbuild"
    assert shutil.which("node"), "Node is needed to rebuild the chart: install nodejs (make test does)"
    assert esbuild.exists(), "The chart's bundler is not installed: run `make dashboard` (or `make test`)"
    subprocess.run(
        ["npm", "run", "--silent", "build", "--", f"--outdir={tmp_path}"],
        cwd=SOURCE,
        check=True,
        timeout=60,
    )
    stale = [name for name in BUILT if (tmp_path / name).read_bytes() != (STATIC / name).read_bytes()]
    assert stale == [], "Run `make dashboard` and commit the result"
