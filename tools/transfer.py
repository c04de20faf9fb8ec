"""Exporting and importing a site over HTTP as a client does, for the tests and benchmarks."""

from __future__ import annotations

from typing import Any

import requests


def export_site(reporting: str, params: dict[str, Any], timeout: float = 60) -> tuple[bytes, int]:
    """Every page of `GET /events/export` with these parameters, following X-Next-Cursor: the
    NDJSON, and how many pages it took."""
    params = dict(params)
    body, pages = b"", 0
    while True:
        response = requests.get(f"{reporting}/events/export", params=params, timeout=timeout)
        response.raise_for_status()
        body, pages = body + response.content, pages + 1
        if "X-Next-Cursor" not in response.headers:
            return body, pages
        params["cursor"] = response.headers["X-Next-Cursor"]


def import_ndjson(ingestion: str, body: bytes, site_id: str, timeout: float = 600) -> requests.Response:
    """`POST /events/import?site_id=...` of an NDJSON body."""
    return requests.post(
        f"{ingestion}/events/import",
        params={"site_id": site_id},
        data=body,
        headers={"Content-Type": "application/x-ndjson"},
        timeout=timeout,
    )
