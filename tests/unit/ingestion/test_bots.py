"""Bots: a corpus of real user agents (tests/unit/ingestion/data), the reasons, and the counts."""

from pathlib import Path

import fakeredis
import pytest

from app.ingestion import bots

DATA = Path(__file__).parent / "data"


def corpus(name: str) -> list[str]:
    lines = (DATA / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


BROWSERS = corpus("browsers")
CRAWLERS = corpus("crawlers")


def test_the_corpus_is_large_enough_to_mean_something():
    assert len(BROWSERS) >= 40
    assert len(CRAWLERS) >= 40
    for name in ("iPhone", "SamsungBrowser", "Edg/", "Firefox/", "Android"):
        assert any(name in browser for browser in BROWSERS), name


@pytest.mark.parametrize("user_agent", BROWSERS)
def test_no_browser_is_taken_for_a_bot(user_agent):
    assert bots.bot_reason(user_agent) is None


def test_the_crawlers_hit_rate_is_printed(capsys):
    caught = [agent for agent in CRAWLERS if bots.bot_reason(agent)]
    share = len(caught) / len(CRAWLERS)
    with capsys.disabled():
        print(f"\nbots: {len(caught)} of {len(CRAWLERS)} crawler user agents caught ({share:.0%})")
    assert caught  # the figure is printed; the list is what must work


@pytest.mark.parametrize(
    ("user_agent", "reason"),
    [
        ("", bots.NO_USER_AGENT),
        ("   ", bots.NO_USER_AGENT),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/131.0.0.0 Safari/537.36",
            bots.HEADLESS,
        ),
        ("Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 PhantomJS/2.1.1 Safari/538.1", bots.HEADLESS),
        (
            "Mozilla/5.0 (X11; Linux x86_64) Chrome/114.0 Electron/25.1.0 Cypress/12.17.0 Safari/537.36",
            bots.AUTOMATION,
        ),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", bots.CRAWLER),
    ],
)
def test_each_bot_has_its_reason(user_agent, reason):
    assert bots.bot_reason(user_agent) == reason


def test_verdicts_are_remembered_by_user_agent():
    bots.bot_reason.cache_clear()
    for _ in range(3):
        bots.bot_reason(BROWSERS[0])
    assert bots.bot_reason.cache_info().hits == 2


def test_drops_are_counted_in_total_and_per_site_and_day_by_reason():
    client = fakeredis.FakeRedis()
    bots.count_dropped(
        client, {("shop", "2025-11-15", bots.CRAWLER): 3, ("blog", "2025-11-15", bots.HEADLESS): 1}
    )
    bots.count_dropped(client, {("shop", "2025-11-15", bots.CRAWLER): 1})
    assert bots.dropped_totals(client) == {"crawler": 4, "headless": 1, "automation": 0, "no_user_agent": 0}
    assert bots.dropped_on(client, "shop", "2025-11-15") == {
        "crawler": 4,
        "headless": 0,
        "automation": 0,
        "no_user_agent": 0,
    }
    assert bots.dropped_on(client, "shop", "2025-11-16")["crawler"] == 0
