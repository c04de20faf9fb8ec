"""Group commit: the requests of one process share their enqueues.

Each request hands its events to the process's committer and waits. One committer thread
takes everything handed in since its last enqueue and queues it as one batch (one Celery
message), then wakes each request with the outcome. Under heavy load the batches grow by
themselves while an enqueue is under way, as Nagle's algorithm holds data back while an
earlier segment is unacknowledged. Under moderate load most requests would go alone, each a
message the worker pays for in full; a group may therefore linger, waiting a moment for
company, as a Kafka producer waits up to `linger.ms` for a fuller batch.

The linger adapts to the arrivals (docs/decisions/adaptive-linger.md). The committer keeps
an average of the gaps between the requests of its process, and a group lingers only when
that gap, and the latest one, are shorter than its window (`linger`, counted from its oldest
request), so that company is expected within it, and never longer than one expected gap
after its latest request. So a lone request, or
one at a rate too low to bring company within the window, goes at once; under load, groups
grow as with a fixed window; and a committer that is already behind adds no wait. A request
is answered only after its own batch is in Redis, so "accepted" still means queued. One
committer a process: with two, a group could start while another waited for Redis, but
groups got smaller and `make bench-ingest` served fewer requests (docs/decisions/).

A request that waited too long is answered by what is true of it. Not yet taken, it is
withdrawn and will never be queued (the caller's 503). Taken, its batch may reach Redis any
moment: it waits for the enqueue's outcome within a bound of its own, and past that its
outcome is unknown, never "not queued"; once answered, it is never sent again on its own.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.monitoring import request_ids

Messages = Sequence[Mapping[str, Any]]
Clock = Callable[[], float]

# The weight of the latest gap in the average: a few gaps move it, so a burst or a lull is
# followed within a handful of requests.
GAP_WEIGHT = 0.25
# A gap longer than this counts as this long: any such gap means "no company", and a long
# idle spell must not take hundreds of requests to forget.
LONGEST_GAP_SECONDS = 0.1


class CommitTimeoutError(Exception):
    """A request's events were not taken for an enqueue in time: withdrawn, they will never
    be queued."""


class OutcomeUnknownError(Exception):
    """A request's events were sent to the broker, but whether they were queued could not be
    learned in time: they may be queued or not."""


@dataclass
class ArrivalRate:
    """The average gap between a process's requests (an exponentially weighted moving
    average); unknown (infinite) until a second request arrives."""

    gap: float = math.inf
    latest: float = -math.inf
    # The arrival before the latest.
    previous: float = -math.inf

    def arrived(self, now: float) -> None:
        if self.latest > -math.inf:
            sample = min(max(0.0, now - self.latest), LONGEST_GAP_SECONDS)
            self.gap = sample if math.isinf(self.gap) else self.gap + GAP_WEIGHT * (sample - self.gap)
        self.previous, self.latest = self.latest, now


def linger_deadline(oldest: float, window: float, rate: ArrivalRate) -> float:
    """The instant the group whose oldest request arrived at `oldest` stops waiting for
    company. Only if requests come closer together than the `window`, so that another is
    expected within it, and the latest two did, does it wait: until the window ends, and no
    longer than one expected gap after the latest request (company that did not come then is
    not coming). The latest two: bursts pull the average down, and a request that comes a
    window after the last has no company coming, whatever the average says. A past instant
    (-inf with no estimate) means at once."""
    if rate.gap >= window or rate.latest - rate.previous >= window:
        return -math.inf
    return min(oldest + window, rate.latest + rate.gap)


@dataclass
class _Ticket:
    messages: Messages
    arrived: float
    # The longest this request's group may linger, counted from its oldest request.
    window: float
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None
    # When the committer took it into a group (monotonic seconds); None while it waits.
    taken_at: float | None = None
    # Its request was answered before its outcome came: never send it again.
    abandoned: bool = False
    # Its request's ids (app/monitoring/request_ids.py), read in the request's own greenlet.
    request_ids: tuple[str, ...] = field(default_factory=request_ids.current)


@dataclass
class _Line:
    """The committer of one process: its waiting tickets and the condition its thread waits on.

    Made on the first submit in each process, never at import or before a fork: threads do
    not survive a fork, and gunicorn's gevent workers patch `threading` only after forking,
    so a lock made earlier would block the whole process.
    """

    pid: int = field(default_factory=os.getpid)
    pending: list[_Ticket] = field(default_factory=list)
    wakeup: threading.Condition = field(default_factory=threading.Condition)
    arrivals: ArrivalRate = field(default_factory=ArrivalRate)


class GroupCommitter:
    """`outage_errors`: the enqueue's errors that mean the broker is away (nothing queued),
    handed to every request of the group; `unknown_errors`: those that mean the batch was
    sent but its fate not heard, answered as OutcomeUnknownError to every request of the
    batch, a group or one request sent again alone. Any other failure of a group is retried
    one request at a time, so that only the request that caused it fails. `clock` tells the
    time the linger is reckoned in (monotonic seconds)."""

    def __init__(
        self,
        enqueue: Callable[[Messages], None],
        max_batch_events: int = 500,
        outage_errors: tuple[type[Exception], ...] = (),
        unknown_errors: tuple[type[Exception], ...] = (),
        clock: Clock = time.monotonic,
    ) -> None:
        self.enqueue = enqueue
        self._clock = clock
        self._max_batch_events = max_batch_events
        self._outage_errors = outage_errors
        self._unknown_errors = unknown_errors
        self._line: _Line | None = None

    def submit(
        self, messages: Messages, timeout: float, linger: float = 0.0, outcome_timeout: float | None = None
    ) -> None:
        """Queue `messages` with whatever else is waiting, or arrives while the group lingers
        (at most `linger` seconds, only while company is expected) and has room; return once
        they are in the broker.

        Waits up to `timeout` seconds for them to be taken into an enqueue, else raises
        CommitTimeoutError (they are withdrawn). Once taken, waits for the enqueue's outcome
        up to `outcome_timeout` (default: `timeout`) seconds after it was taken, else raises
        OutcomeUnknownError. Raises the enqueue's own error if their batch was not queued.
        """
        line = self._line_of_this_process()
        with line.wakeup:
            now = self._clock()
            ticket = _Ticket(messages, arrived=now, window=linger)
            line.pending.append(ticket)
            line.arrivals.arrived(now)
            line.wakeup.notify()
        if not ticket.done.wait(timeout):
            with line.wakeup:
                taken_at = ticket.taken_at
                if taken_at is None:  # not taken yet: withdrawn, so never queued
                    line.pending.remove(ticket)
                    raise CommitTimeoutError(f"events not queued within {timeout} s")
            bound = taken_at + (timeout if outcome_timeout is None else outcome_timeout)
            if not ticket.done.wait(max(0.0, bound - time.monotonic())):
                with line.wakeup:
                    ticket.abandoned = True
                raise OutcomeUnknownError("events sent to the queue, but not confirmed in time")
        if ticket.error is not None:
            raise ticket.error

    def _line_of_this_process(self) -> _Line:
        line = self._line
        if line is None or line.pid != os.getpid():
            # Two threads racing here each start a line; the one not kept still serves the
            # tickets handed to it, then idles. No lock: one made at import would be unpatched.
            line = self._line = _Line()
            threading.Thread(target=self._run, args=(line,), name="group-commit", daemon=True).start()
        return line

    def _next_group(self, line: _Line) -> list[_Ticket]:
        """Everything waiting once the group stops lingering or is full, up to
        `max_batch_events` (a first ticket always goes)."""
        with line.wakeup:
            while True:
                while not line.pending:  # (a ticket that timed out while lingering is withdrawn)
                    line.wakeup.wait()
                oldest = line.pending[0]
                left = linger_deadline(oldest.arrived, oldest.window, line.arrivals) - self._clock()
                if left <= 0 or sum(len(t.messages) for t in line.pending) >= self._max_batch_events:
                    break
                line.wakeup.wait(left)
            group = [line.pending.pop(0)]
            events = len(group[0].messages)
            while line.pending and events + len(line.pending[0].messages) <= self._max_batch_events:
                events += len(line.pending[0].messages)
                group.append(line.pending.pop(0))
            taken_at = time.monotonic()
            for ticket in group:
                ticket.taken_at = taken_at
            return group

    def _run(self, line: _Line) -> None:
        while True:
            group = self._next_group(line)
            error = self._commit(group)
            # A group fails as a whole when the broker is away, or may hold the batch already.
            whole = (*self._outage_errors, OutcomeUnknownError)
            if error is None or len(group) == 1 or isinstance(error, whole):
                self._answer(group, error)
                continue
            for ticket in group:  # one request's events made the group fail: find it
                with line.wakeup:
                    if ticket.abandoned:  # answered already: its events must stay unsent
                        continue
                self._answer([ticket], self._commit([ticket]))

    def _commit(self, group: list[_Ticket]) -> Exception | None:
        """Enqueue the group's events; the failure, if any, as the requests are answered: an
        error of `unknown_errors` as OutcomeUnknownError, any other as it was raised."""
        token = request_ids.enter(*request_ids.gather(ticket.request_ids for ticket in group))
        try:
            self.enqueue([message for ticket in group for message in ticket.messages])
        except self._unknown_errors as failure:
            unknown = OutcomeUnknownError(f"events sent to the queue, but not confirmed: {failure}")
            unknown.__cause__ = failure
            return unknown
        except Exception as failure:
            return failure
        finally:
            request_ids.leave(token)
        return None

    @staticmethod
    def _answer(group: list[_Ticket], error: Exception | None) -> None:
        for ticket in group:
            ticket.error = error
            ticket.done.set()
