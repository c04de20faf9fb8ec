"""Bots' events are dropped in ingestion, answered as accepted, and counted by site and reason;
only the visitor's user agent is checked, so servers sending for themselves still count."""

import json

import pytest

from app.ingestion import bots, views
from tools.factories import make_event

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/131.0 Safari/537.36"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
PAGE = {"Origin": "https://shop.test"}


@pytest.fixture
def queued(monkeypatch):
    messages = []
    monkeypatch.setattr(views.committer, "submit", lambda batch, **_: messages.extend(batch))
    return messages


def post(client, body, path="/event", user_agent=None, **headers):
    if user_agent is not None:
        headers["User-Agent"] = user_agent
    return client.post(path, data=json.dumps(body), content_type="application/json", headers=headers)


def dropped(counter_store, reason):
    return bots.dropped_on(counter_store, "site-abc-123", "2025-11-15")[reason]


@pytest.mark.parametrize(
    ("user_agent", "headers", "reason"),
    [
        (GOOGLEBOT, PAGE, bots.CRAWLER),
        (HEADLESS, {"Sec-Fetch-Site": "cross-site"}, bots.HEADLESS),
        ("", PAGE, bots.NO_USER_AGENT),
    ],
)
def test_a_bot_s_page_view_is_answered_as_accepted_and_counted_not_queued(
    ingestion, queued, counter_store, user_agent, headers, reason
):
    response = post(ingestion, make_event(), user_agent=user_agent, **headers)
    assert (response.status_code, response.get_json()) == (200, {"status": "accepted"})
    assert queued == []
    assert dropped(counter_store, reason) == 1


def test_a_person_s_browser_is_queued(ingestion, queued, counter_store):
    assert post(ingestion, make_event(), user_agent=FIREFOX, **PAGE).status_code == 200
    assert len(queued) == 1
    assert bots.dropped_totals(counter_store) == dict.fromkeys(bots.REASONS, 0)


@pytest.mark.parametrize("user_agent", ["curl/8.5.0", "analytics-python/2.3.3", "python-requests/2.32.3", ""])
def test_a_server_sending_for_itself_is_never_checked(ingestion, queued, user_agent):
    """The README's curl example and the SDKs: no page, no visitor named."""
    assert post(ingestion, make_event(), user_agent=user_agent).status_code == 200
    assert len(queued) == 1


def test_a_server_naming_a_crawler_as_its_visitor_has_the_event_dropped(ingestion, queued, counter_store):
    post(ingestion, make_event(user_agent=GOOGLEBOT), user_agent="analytics-python/2.3.3")
    assert queued == []
    assert dropped(counter_store, bots.CRAWLER) == 1


def test_a_page_cannot_pass_for_a_person_by_naming_another_user_agent(ingestion, queued, counter_store):
    post(ingestion, make_event(user_agent=FIREFOX), user_agent=GOOGLEBOT, **PAGE)
    assert queued == []


def test_a_batch_queues_the_people_and_answers_the_bots_as_accepted(ingestion, queued, counter_store):
    events = [make_event(user_agent=FIREFOX), make_event(user_agent=GOOGLEBOT), make_event(site_id=5)]
    response = post(ingestion, {"events": events}, path="/events")
    body = response.get_json()
    assert (response.status_code, body["accepted"], body["rejected"], list(body["errors"])) == (
        200,
        2,
        1,
        ["2"],
    )
    assert [message["user_agent"] for message in queued] == [FIREFOX]
    assert dropped(counter_store, bots.CRAWLER) == 1


def test_a_batch_of_bots_only_is_answered_as_accepted(ingestion, queued):
    response = post(ingestion, [make_event(), make_event()], path="/events", user_agent=GOOGLEBOT, **PAGE)
    assert (response.status_code, response.get_json()["accepted"]) == (200, 2)
    assert queued == []


def test_pipeline_health_shows_the_bots_dropped(ingestion, reporting, queued):
    post(ingestion, make_event(), user_agent=GOOGLEBOT, **PAGE)
    post(ingestion, make_event(), user_agent="", **PAGE)
    assert reporting.get("/health/pipeline").get_json()["bots_dropped"] == {
        "crawler": 1,
        "headless": 0,
        "automation": 0,
        "no_user_agent": 1,
    }
    site_day = reporting.get("/health/pipeline?site_id=site-abc-123&date=2025-11-15").get_json()
    assert site_day["bots_dropped"]["crawler"] == 1


def test_the_crawler_list_reads_a_bounded_prefix_of_a_long_user_agent(monkeypatch):
    """crawlerdetect's patterns take time that grows with the square of the agent's length:
    an 8 KB User-Agent header held a gevent worker (and every request behind it) for
    seconds, before any rate limit."""
    read = []

    def is_crawler(agent):
        read.append(len(agent))
        return False

    monkeypatch.setattr(bots._crawlers, "isCrawler", is_crawler)
    bots.bot_reason.cache_clear()
    assert bots.bot_reason(FIREFOX + " x" * 4000) is None
    assert read == [bots.CHECKED_LENGTH]


def test_a_long_user_agent_header_is_queued_cut_to_the_fields_bound(ingestion, queued):
    """Copied whole into each event of a batch, an 8 KB header made a 56 KB request queue
    73 times its size: the address's event rate bounds events, not bytes."""
    agent = FIREFOX + " x" * 4000
    events = [make_event(path=f"/{n}") for n in range(5)]
    assert post(ingestion, events, path="/events", user_agent=agent, **PAGE).status_code == 200
    assert len(queued) == 5
    assert all(len(message["user_agent"]) == 1024 for message in queued)
