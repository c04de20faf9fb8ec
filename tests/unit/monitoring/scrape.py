"""Scraping an app's `/metrics` through Flask's test client."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.metrics import Samples, parse


def scrape(client: FlaskClient, headers: dict[str, str] | None = None) -> Samples:
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return parse(response.get_data(as_text=True))
