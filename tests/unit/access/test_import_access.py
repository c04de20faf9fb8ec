"""`POST /events/import` with AUTH_MODE=keys: an operator's, into registered sites only."""

import json

from tools.factories import make_event

BODY = json.dumps(make_event(site_id="shop")) + "\n"
NDJSON = {"Content-Type": "application/x-ndjson"}


def test_an_import_needs_an_operator_key(keyed_ingestion, site_key, cli):
    shop_key = site_key("shop")
    assert keyed_ingestion.post("/events/import", data=BODY, headers=NDJSON).status_code == 401
    wrong = {**NDJSON, "Authorization": "Bearer ak_wrong"}
    assert keyed_ingestion.post("/events/import", data=BODY, headers=wrong).status_code == 401
    as_site = {**NDJSON, "Authorization": f"Bearer {shop_key}"}
    response = keyed_ingestion.post("/events/import", data=BODY, headers=as_site)
    assert response.status_code == 403
    operator = cli("key", "create", "--operator").splitlines()[-1]
    as_operator = {**NDJSON, "Authorization": f"Bearer {operator}"}
    response = keyed_ingestion.post("/events/import", data=BODY, headers=as_operator)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["sent"] == 1


def test_events_of_an_unregistered_site_are_refused(keyed_ingestion, cli):
    operator = cli("key", "create", "--operator").splitlines()[-1]
    headers = {**NDJSON, "Authorization": f"Bearer {operator}"}
    response = keyed_ingestion.post("/events/import?site_id=nowhere", data=BODY, headers=headers)
    assert response.status_code == 400
    assert "Unknown site nowhere" in response.get_json()["errors"]["1"]["site_id"][0]
