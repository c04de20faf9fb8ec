"""Request ids: a client's sane X-Request-ID kept, any other replaced, and the ids of the
requests a group commit joins all reaching the enqueue that queues their events."""

import threading

import pytest

from app.ingestion.group_commit import GroupCommitter
from app.monitoring import request_ids
from tools.factories import make_event


def test_a_sane_request_id_is_kept_and_answered(ingestion):
    response = ingestion.post("/event", json=make_event(), headers={"X-Request-ID": "lb-7f3a.42"})
    assert response.headers["X-Request-ID"] == "lb-7f3a.42"


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, 'quote"', "tab\tid"])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(ingestion, given):
    headers = {} if given is None else {"X-Request-ID": given}
    first = ingestion.get("/health", headers=headers).headers["X-Request-ID"]
    second = ingestion.get("/health", headers=headers).headers["X-Request-ID"]
    assert request_ids.SANE.fullmatch(first)
    assert first != second


def test_a_group_commit_enqueues_with_the_ids_of_every_request_it_joins():
    seen = []
    arrived = threading.Barrier(2)

    def enqueue(messages):
        seen.append(request_ids.current())

    committer = GroupCommitter(enqueue)

    def submit(request_id):
        token = request_ids.enter(request_id)
        try:
            arrived.wait(5)
            committer.submit([{"n": request_id}], timeout=5, linger=0.5)
        finally:
            request_ids.leave(token)

    threads = [threading.Thread(target=submit, args=(name,)) for name in ("req-a", "req-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(request_id for ids in seen for request_id in ids) == ["req-a", "req-b"]
    assert request_ids.current() == ()


def test_gather_keeps_each_id_once_in_order():
    assert request_ids.gather([("a", "b"), ("b",), ("c", "a")]) == ("a", "b", "c")
