"""Group commit: concurrent requests share enqueues, and each learns its own batch's fate."""

import threading
import time

import pytest

from app.ingestion.group_commit import CommitTimeoutError, GroupCommitter, OutcomeUnknownError


class GatedQueue:
    """An enqueue that records batches and holds the first one until released."""

    def __init__(self):
        self.batches = []
        self.first_started = threading.Event()
        self.release = threading.Event()

    def __call__(self, messages):
        self.batches.append(list(messages))
        if len(self.batches) == 1:
            self.first_started.set()
            self.release.wait(10)


def submit_in_threads(committer, payloads, timeout=10, linger=0.0):
    errors = {}

    def submit(index, messages):
        try:
            committer.submit(messages, timeout, linger=linger)
        except Exception as error:
            errors[index] = error

    threads = [threading.Thread(target=submit, args=(i, p)) for i, p in enumerate(payloads)]
    for thread in threads:
        thread.start()
    return threads, errors


def test_a_lone_request_is_queued_alone_and_at_once():
    queue = GatedQueue()
    queue.release.set()
    GroupCommitter(queue).submit([{"n": 1}], timeout=5)
    assert queue.batches == [[{"n": 1}]]


def test_requests_arriving_during_an_enqueue_share_the_next_one():
    queue = GatedQueue()
    committer = GroupCommitter(queue)
    first, _ = submit_in_threads(committer, [[{"n": 0}]])
    assert queue.first_started.wait(5)
    waiting, errors = submit_in_threads(committer, [[{"n": n}] for n in range(1, 6)])
    queue.release.set()
    for thread in first + waiting:
        thread.join(10)
    assert errors == {}
    assert queue.batches[0] == [{"n": 0}]
    assert sorted(m["n"] for m in queue.batches[1]) == [1, 2, 3, 4, 5]


def test_a_group_never_exceeds_the_batch_limit():
    queue = GatedQueue()
    committer = GroupCommitter(queue, max_batch_events=4)
    first, _ = submit_in_threads(committer, [[{"n": 0}]])
    assert queue.first_started.wait(5)
    waiting, errors = submit_in_threads(committer, [[{"n": n}, {"n": n}] for n in range(3)])
    queue.release.set()
    for thread in first + waiting:
        thread.join(10)
    assert errors == {}
    assert [len(batch) for batch in queue.batches[1:]] == [4, 2]


def test_every_request_of_a_failed_batch_gets_its_error():
    def refuse(messages):
        raise ConnectionError("broker down")

    threads, errors = submit_in_threads(GroupCommitter(refuse), [[{"n": n}] for n in range(4)])
    for thread in threads:
        thread.join(10)
    assert len(errors) == 4
    assert all(isinstance(error, ConnectionError) for error in errors.values())


def test_a_group_that_fails_for_one_request_fails_only_that_request():
    queue = GatedQueue()
    committer = GroupCommitter(lambda messages: refuse_poison(queue, messages))
    first, _ = submit_in_threads(committer, [[{"n": 0}]])
    assert queue.first_started.wait(5)
    waiting, errors = submit_in_threads(committer, [[{"n": 1}], [{"n": "poison"}], [{"n": 3}]])
    queue.release.set()
    for thread in first + waiting:
        thread.join(10)
    assert list(errors) == [1]
    assert isinstance(errors[1], ValueError)
    assert [len(batch) for batch in queue.batches] == [1, 3, 1, 1, 1]  # the group, then each alone


def refuse_poison(queue, messages):
    queue(messages)
    if any(message["n"] == "poison" for message in messages):
        raise ValueError("cannot serialise the poison")


def group_failing_with(failure, **options):
    """Three requests grouped behind an enqueue held up, whose own enqueue fails with
    `failure`: their errors by request, and the batches sent."""
    queue = GatedQueue()

    def failing(messages):
        queue(messages)
        raise failure

    committer = GroupCommitter(failing, **options)
    first, _ = submit_in_threads(committer, [[{"n": 0}]])
    assert queue.first_started.wait(5)
    waiting, errors = submit_in_threads(committer, [[{"n": n}] for n in range(1, 4)])
    queue.release.set()
    for thread in first + waiting:
        thread.join(10)
    return errors, queue.batches


def test_an_outage_fails_the_whole_group_at_once():
    errors, batches = group_failing_with(ConnectionError("broker down"), outage_errors=(ConnectionError,))
    assert len(errors) == 3
    assert [len(batch) for batch in batches] == [1, 3]  # no retry one request at a time


def test_a_request_that_timed_out_waiting_is_withdrawn_and_never_queued():
    queue = GatedQueue()
    committer = GroupCommitter(queue)
    first, _ = submit_in_threads(committer, [[{"n": 0}]])
    assert queue.first_started.wait(5)
    with pytest.raises(CommitTimeoutError):
        committer.submit([{"n": "gave up"}], timeout=0.2)  # waits behind the held enqueue
    queue.release.set()
    for thread in first:
        thread.join(10)
    committer.submit([{"n": 2}], timeout=5)
    assert [m["n"] for batch in queue.batches for m in batch] == [0, 2]


def test_a_lingering_request_waits_for_company_and_shares_its_enqueue():
    queue = GatedQueue()
    queue.release.set()
    committer = GroupCommitter(queue)
    first = threading.Thread(target=committer.submit, args=([{"n": 0}], 5), kwargs={"linger": 0.5})
    first.start()
    time.sleep(0.1)
    committer.submit([{"n": 1}], timeout=5, linger=0.5)
    first.join(5)
    assert queue.batches == [[{"n": 0}, {"n": 1}]]


def test_a_lone_lingering_request_is_queued_when_its_linger_ends():
    queue = GatedQueue()
    queue.release.set()
    started = time.monotonic()
    GroupCommitter(queue).submit([{"n": 0}], timeout=5, linger=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    assert queue.batches == [[{"n": 0}]]


def test_a_full_group_stops_lingering():
    queue = GatedQueue()
    queue.release.set()
    committer = GroupCommitter(queue, max_batch_events=2)
    started = time.monotonic()
    threads, errors = submit_in_threads(committer, [[{"n": 0}], [{"n": 1}]], linger=30)
    for thread in threads:
        thread.join(10)
    assert errors == {}
    assert time.monotonic() - started < 5
    assert sorted(m["n"] for m in queue.batches[0]) == [0, 1]


def test_a_request_that_times_out_while_lingering_is_withdrawn_and_the_committer_goes_on():
    queue = GatedQueue()
    queue.release.set()
    committer = GroupCommitter(queue)
    with pytest.raises(CommitTimeoutError):
        committer.submit([{"n": "gave up"}], timeout=0.1, linger=0.3)
    committer.submit([{"n": 1}], timeout=5)
    assert queue.batches == [[{"n": 1}]]


def answer_of(committer, messages, **wait):
    """What `submit` ends with: None once queued, else the error it raised."""
    try:
        committer.submit(messages, **wait)
    except Exception as error:
        return error
    return None


def test_a_request_whose_batch_was_being_sent_is_never_told_it_was_not_queued():
    """Redis takes the batch after the request's timeout: a 503 ("not queued") would be a lie."""
    queue = GatedQueue()
    committer = GroupCommitter(queue)
    threading.Timer(0.3, queue.release.set).start()
    answer = answer_of(committer, [{"n": 0}], timeout=0.1)
    assert not isinstance(answer, CommitTimeoutError)
    assert queue.batches == [[{"n": 0}]]


def test_a_request_whose_batch_was_sent_waits_for_its_outcome_within_its_bound():
    queue = GatedQueue()
    committer = GroupCommitter(queue)
    threading.Timer(0.3, queue.release.set).start()
    assert answer_of(committer, [{"n": 0}], timeout=0.1, outcome_timeout=5) is None


def test_a_request_whose_batch_was_sent_but_not_confirmed_in_its_bound_learns_the_outcome_is_unknown():
    queue = GatedQueue()
    committer = GroupCommitter(queue)
    started = time.monotonic()
    answer = answer_of(committer, [{"n": 0}], timeout=0.1, outcome_timeout=0.3)
    assert isinstance(answer, OutcomeUnknownError)
    assert 0.3 <= time.monotonic() - started < 2
    queue.release.set()


def test_requests_answered_before_their_group_failed_are_never_sent_again_alone():
    """A group failing for one request's events is retried one request at a time, but not
    for requests already answered: their events would be queued after the answer."""
    batches = []

    def refuse_late(messages):
        batches.append(list(messages))
        time.sleep(0.5)
        raise ValueError("cannot serialise the poison")

    committer = GroupCommitter(refuse_late)
    threads, errors = submit_in_threads(committer, [[{"n": n}] for n in range(3)], timeout=0.2, linger=0.1)
    for thread in threads:
        thread.join(10)
    time.sleep(1)  # the committer's retries, if any
    assert len(errors) == 3
    assert [len(batch) for batch in batches] == [3]


def test_a_group_whose_send_may_have_landed_is_answered_unknown_and_never_sent_again():
    errors, batches = group_failing_with(TimeoutError("no reply to EXEC"), unknown_errors=(TimeoutError,))
    assert len(errors) == 3
    assert all(isinstance(error, OutcomeUnknownError) for error in errors.values())
    assert [len(batch) for batch in batches] == [1, 3]


def test_a_request_retried_alone_whose_send_may_have_landed_learns_the_outcome_is_unknown():
    """The group failed for another request's events; sent again alone, this request's
    transaction got no reply: it may be queued, so it is never told it was not."""
    queue = GatedQueue()

    def enqueue(messages):
        queue(messages)
        if any(message["n"] == "poison" for message in messages):
            raise ValueError("cannot serialise the poison")
        if len(queue.batches) > 1:
            raise TimeoutError("no reply to EXEC")

    committer = GroupCommitter(enqueue, unknown_errors=(TimeoutError,))
    first, _ = submit_in_threads(committer, [[{"n": 0}]])
    assert queue.first_started.wait(5)
    waiting, errors = submit_in_threads(committer, [[{"n": 1}], [{"n": "poison"}]])
    queue.release.set()
    for thread in first + waiting:
        thread.join(10)
    assert [len(batch) for batch in queue.batches] == [1, 2, 1, 1]  # the group, then each alone
    assert isinstance(errors[0], OutcomeUnknownError)
    assert isinstance(errors[1], ValueError)
