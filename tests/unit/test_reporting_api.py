import pytest

from app import storage
from app.schemas import to_message
from tests.factories import SEED_EXAMPLE_STATS, seed_example_events

MISSING = "Missing required parameters: site_id, date (YYYY-MM-DD)"


@pytest.mark.parametrize("endpoint", ["/stats", "/stats/aggregated"])
def test_stats_answer_in_the_contract_shape(reporting, db, endpoint):
    events = seed_example_events("site-abc-123")
    storage.insert_events(db, [to_message(e) for e in events])
    response = reporting.get(f"{endpoint}?site_id=site-abc-123&date=2025-11-15")
    assert response.status_code == 200
    assert response.get_json() == {"site_id": "site-abc-123", **SEED_EXAMPLE_STATS}
    assert list(response.get_json()) == ["site_id", "date", "total_views", "unique_users", "top_paths"]


@pytest.mark.parametrize("endpoint", ["/stats", "/stats/aggregated"])
@pytest.mark.parametrize(
    "query",
    [
        "",
        "?site_id=site-abc-123",
        "?date=2025-11-15",
        "?site_id=&date=2025-11-15",
        "?site_id=site-abc-123&date=15-11-2025",
        "?site_id=site-abc-123&date=2025-02-30",
        "?site_id=site-abc-123&date=2025-11-15T00:00:00",
    ],
)
def test_missing_or_malformed_parameters_give_400(reporting, endpoint, query):
    response = reporting.get(endpoint + query)
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == "error"
    assert body["message"] == MISSING


def test_health_is_ok_when_mongo_answers(reporting):
    assert reporting.get("/health").get_json() == {"status": "ok", "service": "reporting-service"}
