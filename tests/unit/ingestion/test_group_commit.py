"""Group commit: concurrent requests share enqueues, and each learns its own batch's fate."""

import math
import threading
import time

import pytest

from app.ingestion.group_commit import (
    ArrivalRate,
    CommitTimeoutError,
    GroupCommitter,
    OutcomeUnknownError,
    linger_deadline,
)


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


class FakeClock:
    """The time the committer's linger is reckoned in, moved only by the test."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def steady(clock, committer, gap, count):
    """`count` lone requests `gap` seconds apart on `clock`: the committer learns the rate.
    Each goes before the next arrives (its linger ends one expected gap after it)."""
    for n in range(count):
        thread = threading.Thread(target=committer.submit, args=([{"warm": n}], 10), kwargs={"linger": 1.0})
        thread.start()
        clock.now += gap
        thread.join(10)
        assert not thread.is_alive()


def test_a_lone_request_does_not_linger():
    """No company expected: its enqueue starts at the instant it arrived. (With the clock
    stopped, a request that lingered would never go, and would time out.)"""
    clock = FakeClock()
    sent_at = []
    committer = GroupCommitter(lambda messages: sent_at.append(clock()), clock=clock)
    arrived = clock()
    committer.submit([{"n": 0}], timeout=2, linger=10.0)
    assert sent_at == [arrived]


def test_requests_too_far_apart_for_the_window_do_not_linger():
    """One a second with a 0.1 s window: company never comes within it, so none waits."""
    clock = FakeClock()
    sent_at = []
    committer = GroupCommitter(lambda messages: sent_at.append(clock()), clock=clock)
    for _ in range(5):
        arrived = clock()
        committer.submit([{"n": 0}], timeout=2, linger=0.1)
        assert sent_at[-1] == arrived
        clock.now += 1.0


def test_under_load_concurrent_requests_linger_and_share_a_group():
    clock = FakeClock()
    queue = GatedQueue()
    queue.release.set()
    committer = GroupCommitter(queue, clock=clock)
    steady(clock, committer, gap=0.01, count=5)  # 100 a second, with a 1 s window
    queue.batches.clear()
    threads, errors = submit_in_threads(committer, [[{"n": n}] for n in range(3)], linger=1.0)
    time.sleep(0.3)  # they arrive at the same instant on the stopped clock, and linger
    assert queue.batches == []
    clock.now += 2.0  # past the window
    for thread in threads:
        thread.join(10)
    assert errors == {}
    assert [sorted(m["n"] for m in batch) for batch in queue.batches] == [[0, 1, 2]]


def test_linger_ends_a_gap_after_the_latest_request_or_with_the_window():
    rate = ArrivalRate()
    assert linger_deadline(5.0, 1.0, rate) == -math.inf  # nothing known: at once
    for now in (0.0, 0.01, 0.02, 0.03):
        rate.arrived(now)
    assert rate.gap == pytest.approx(0.01)
    assert linger_deadline(0.03, 0.1, rate) == pytest.approx(0.04)  # the latest + a gap
    assert linger_deadline(0.0, 0.035, rate) == pytest.approx(0.035)  # the window's end
    assert linger_deadline(0.03, 0.01, rate) == -math.inf  # no company expected within it: at once


def test_a_long_idle_spell_is_forgotten_within_a_few_requests():
    rate = ArrivalRate()
    rate.arrived(0.0)
    rate.arrived(3600.0)
    for n in range(1, 16):
        rate.arrived(3600.0 + n * 0.001)
    assert rate.gap < 0.005  # below half the default window: company is expected again


def test_a_full_group_stops_lingering():
    clock = FakeClock()
    queue = GatedQueue()
    queue.release.set()
    committer = GroupCommitter(queue, max_batch_events=2, clock=clock)
    steady(clock, committer, gap=0.01, count=5)
    queue.batches.clear()
    threads, errors = submit_in_threads(committer, [[{"n": 0}], [{"n": 1}]], linger=30)
    for thread in threads:  # the clock stays stopped: only a full group goes
        thread.join(10)
    assert errors == {}
    assert sorted(m["n"] for m in queue.batches[0]) == [0, 1]


def test_a_request_that_times_out_while_lingering_is_withdrawn_and_the_committer_goes_on():
    clock = FakeClock()
    queue = GatedQueue()
    queue.release.set()
    committer = GroupCommitter(queue, clock=clock)
    steady(clock, committer, gap=0.01, count=5)
    queue.batches.clear()
    with pytest.raises(CommitTimeoutError):  # company expected, the clock stopped: it lingers
        committer.submit([{"n": "gave up"}], timeout=0.1, linger=1.0)
    clock.now += 2.0
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
    queue = GatedQueue()

    def refuse_late(messages):
        queue(messages)
        if len(queue.batches) > 1:
            time.sleep(0.5)
            raise ValueError("cannot serialise the poison")

    committer = GroupCommitter(refuse_late)
    first, _ = submit_in_threads(committer, [[{"n": 0}]])
    assert queue.first_started.wait(5)
    waiting, errors = submit_in_threads(committer, [[{"n": n}] for n in range(1, 4)], timeout=0.2)
    time.sleep(0.05)  # they wait behind the held enqueue
    queue.release.set()
    for thread in first + waiting:
        thread.join(10)
    time.sleep(1)  # the committer's retries, if any
    assert len(errors) == 3
    assert [len(batch) for batch in queue.batches] == [1, 3]


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


@pytest.mark.parametrize("offset", [0.011, 0.02, 0.05, 0.099])
def test_a_lone_request_after_a_burst_goes_at_once(offset):
    """Bursts pull the average gap down; a request that comes a window or more after the
    last one has no company coming, and must not wait for it."""
    rate = ArrivalRate()
    for burst in range(50):
        for _ in range(8):
            rate.arrived(burst * 0.1)
    lone = 4.9 + offset
    rate.arrived(lone)
    assert linger_deadline(lone, 0.01, rate) == -math.inf
