"""HTTP helpers for talking to the running services the way a client would."""

from __future__ import annotations

from typing import Any

import requests

from tools.processes import wait_until

TIMEOUT = 10


def post_event(ingestion_url: str, event: Any, timeout: float = TIMEOUT) -> requests.Response:
    return requests.post(f"{ingestion_url}/event", json=event, timeout=timeout)


def get_stats(reporting_url: str, site_id: str, day: str, endpoint: str = "/stats") -> dict[str, Any]:
    response = requests.get(
        f"{reporting_url}{endpoint}", params={"site_id": site_id, "date": day}, timeout=TIMEOUT
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def wait_for_views(
    reporting_url: str, site_id: str, day: str, views: int, timeout: float = 30
) -> dict[str, Any]:
    """Poll /stats until the site's day shows `views` events; return that answer."""
    wait_until(
        lambda: get_stats(reporting_url, site_id, day)["total_views"] >= views,
        timeout,
        f"{views} views of {site_id} on {day}",
        interval=0.1,
    )
    return get_stats(reporting_url, site_id, day)
