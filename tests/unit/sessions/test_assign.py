"""Each event's visit, from its visitor's state: the pure rule of docs/sessions.md."""

from datetime import UTC, datetime, timedelta

from app.sessions.assign import VisitorState, assign

START = datetime(2025, 11, 15, 10, 0, tzinfo=UTC)


class Visitors:
    """States by visitor, as the compactor keeps them, events given in arrival order."""

    def __init__(self) -> None:
        self.states: dict[str, VisitorState] = {}
        self.opened = 0

    def visit(self, minutes: float, visitor: str = "alice", yesterday: str | None = None) -> str:
        self.opened += 1
        state = self.states.setdefault(visitor, VisitorState())
        previous = self.states.get(yesterday) if yesterday else None
        return assign(state, START + timedelta(minutes=minutes), f"visit-{self.opened}", previous)

    def visits(self, *minutes: float) -> list[str]:
        return [self.visit(minute) for minute in minutes]


def in_time_order(*minutes: float) -> list[str]:
    """The visits of one visitor's events arriving in time order, in the order given."""
    visitors = Visitors()
    found = dict(zip(sorted(minutes), visitors.visits(*sorted(minutes)), strict=True))
    return [found[minute] for minute in minutes]


def test_events_less_than_30_minutes_apart_are_one_visit_and_a_longer_pause_starts_another():
    first, second, third, fourth = Visitors().visits(0, 29, 58, 88.5)
    assert first == second == third
    assert fourth != third


def test_a_pause_of_exactly_30_minutes_goes_on_with_the_visit():
    assert len(set(Visitors().visits(0, 30))) == 1


def test_each_visitor_has_visits_of_their_own():
    visitors = Visitors()
    assert visitors.visit(0, "alice") != visitors.visit(1, "bob")


def test_an_event_arriving_late_joins_the_visit_it_is_within_30_minutes_of():
    later, earlier = Visitors().visits(20, 0)
    assert later == earlier


def test_events_in_time_order_whatever_their_arrival_get_one_visit():
    assert len(set(in_time_order(50, 0, 25))) == 1


def test_a_late_event_widens_its_visit_backwards_for_the_next():
    # 0 joins 20's visit and moves its start: -25 is then within 30 minutes of it.
    assert len(set(Visitors().visits(20, 0, -25))) == 1


def test_events_arriving_out_of_order_across_a_gap_may_split_a_visit_but_never_join_strangers():
    # 0 and 50 are 50 minutes apart: two visits until 25 arrives, which bridges them. It
    # joins the visit it finds (50's), so 0 stays a visit of its own: split, never wrong.
    visitors = Visitors()
    zero, fifty, twenty_five = visitors.visits(0, 50, 25)
    assert zero != fifty
    assert twenty_five == fifty
    # An event far older than the visits the state follows gets a visit of its own, which
    # the state follows too, without losing its current one.
    old, after, older = visitors.visits(-120, 60, -100)
    assert old not in (zero, fifty)
    assert after == fifty
    assert older == old


def test_a_state_follows_a_few_earlier_visits_forgetting_the_one_that_ended_first():
    visitors = Visitors()
    # Late events, each an hour before the last, then a second event of each (in that order).
    firsts = visitors.visits(0, -60, -120, -180, -240)
    seconds = visitors.visits(-55, -115, -235, -175)
    assert len(set(firsts)) == 5
    # Followed: the current visit (0) and EARLIER = 3 earlier ones; when -240 opened, the one
    # at -180 was forgotten: it ended first among those kept, the one just opened aside.
    assert seconds[:3] == [firsts[1], firsts[2], firsts[4]]
    assert seconds[3] not in firsts


def test_a_late_event_joins_the_visit_before_the_current_one():
    visitors = Visitors()
    first, second = visitors.visits(0, 60)
    assert first != second
    assert visitors.visit(20) == first
    # ... which it widened: 45 is within 30 minutes of 20.
    assert visitors.visit(45) in (first, second)


def test_the_same_events_in_the_same_order_get_the_same_visits():
    minutes = (0, 10, 100, 40, -5)
    assert Visitors().visits(*minutes) == Visitors().visits(*minutes)


def test_a_visit_goes_on_across_midnight_under_the_new_days_visitor_id():
    visitors = Visitors()
    evening = visitors.visit(0, "day-1")
    after_midnight = visitors.visit(20, "day-2", yesterday="day-1")
    # A previous day's id only lets a visit go on: it names no one beyond it.
    stranger = visitors.visit(39, "day-2b", yesterday="day-0")
    assert after_midnight == evening
    assert stranger != evening
    # Only the first event under the new id looks back: the new id's state follows the visit.
    assert visitors.visit(45, "day-2", yesterday="day-1") == evening


def test_a_previous_days_visit_more_than_30_minutes_back_is_not_continued():
    visitors = Visitors()
    evening = visitors.visit(0, "day-1")
    assert visitors.visit(31, "day-2", yesterday="day-1") != evening
