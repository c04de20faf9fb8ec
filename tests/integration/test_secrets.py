"""No secret in logs or error bodies: a Redis password in REDIS_URL appears in no process's
log and no answer, whether Redis answers or not."""

import uuid

import requests

from tests.integration.client import TIMEOUT, post_event
from tests.integration.services import start_flower
from tests.integration.stack import Stack
from tools.factories import make_event, new_site_id
from tools.processes import port_open, wait_until

PASSWORD = "pw-" + uuid.uuid4().hex


def test_the_redis_password_appears_in_no_log_and_no_answer(run_dir):
    stack = Stack.start(
        run_dir / f"secrets-{uuid.uuid4().hex[:8]}", redis_password=PASSWORD, LOG_LEVEL="debug"
    )
    flower, port = start_flower("flower", stack.env, stack.root, FLOWER_BASIC_AUTH="admin:flower-pw")
    stack.processes.append(flower)
    try:
        stack.start_worker()
        wait_until(lambda: port_open(port), 60, "flower")
        site_id = new_site_id()
        assert post_event(stack.ingestion_url, make_event(site_id=site_id)).status_code == 200
        answers = [requests.get(f"{stack.ingestion_url}/health", timeout=TIMEOUT).text]
        stack.redis.stop()
        for _ in range(3):
            response = post_event(stack.ingestion_url, make_event(site_id=site_id))
            assert response.status_code == 503
            answers.append(response.text)
        answers.append(requests.get(f"{stack.ingestion_url}/health", timeout=TIMEOUT).text)
        answers.append(requests.get(f"{stack.reporting_url}/health/pipeline", timeout=TIMEOUT).text)
        stack.redis.start()
    finally:
        stack.stop()
    assert not [answer for answer in answers if PASSWORD in answer]
    logs = {path.name: path.read_text(errors="replace") for path in stack.root.glob("*.log")}
    assert {"ingestion.log", "reporting.log", "flower.log"} <= set(logs)
    assert [name for name, text in logs.items() if PASSWORD in text] == []
