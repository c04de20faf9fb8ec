"""Real user agents of current browsers, and what each says."""

import pytest

from app.enrichment.agents import describe

AGENTS = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        {
            "device": "desktop",
            "browser": "Chrome",
            "browser_version": "131",
            "os": "Windows",
            "os_version": "10",
        },
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
        {
            "device": "desktop",
            "browser": "Edge",
            "browser_version": "131",
            "os": "Windows",
            "os_version": "10",
        },
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        {"device": "desktop", "browser": "Firefox", "browser_version": "133", "os": "Linux"},
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        {
            "device": "desktop",
            "browser": "Safari",
            "browser_version": "18",
            "os": "Mac OS X",
            "os_version": "10",
        },
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Mobile/15E148 Safari/604.1",
        {
            "device": "mobile",
            "browser": "Mobile Safari",
            "browser_version": "18",
            "os": "iOS",
            "os_version": "18",
        },
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.1 Mobile/15E148 Safari/604.1",
        {
            "device": "tablet",
            "browser": "Mobile Safari",
            "browser_version": "17",
            "os": "iOS",
            "os_version": "17",
        },
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
        "Mobile Safari/537.36",
        {
            "device": "mobile",
            "browser": "Chrome Mobile",
            "browser_version": "131",
            "os": "Android",
            "os_version": "10",
        },
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        {
            "device": "tablet",
            "browser": "Chrome",
            "browser_version": "131",
            "os": "Android",
            "os_version": "14",
        },
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        {
            "device": "mobile",
            "browser": "Samsung Internet",
            "browser_version": "26",
            "os": "Android",
            "os_version": "14",
        },
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
        {
            "device": "mobile",
            "browser": "Chrome Mobile iOS",
            "browser_version": "131",
            "os": "iOS",
            "os_version": "17",
        },
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
        {
            "device": "desktop",
            "browser": "Opera",
            "browser_version": "115",
            "os": "Windows",
            "os_version": "10",
        },
    ),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        {
            "device": "desktop",
            "browser": "Chrome",
            "browser_version": "131",
            "os": "Chrome OS",
            "os_version": "14541",
        },
    ),
]


@pytest.mark.parametrize(("user_agent", "expected"), AGENTS)
def test_a_browsers_user_agent_names_its_device_browser_and_os(user_agent, expected):
    assert describe(user_agent) == expected


def test_a_user_agent_is_parsed_once_while_it_is_cached():
    describe.cache_clear()
    describe(AGENTS[0][0])
    describe(AGENTS[0][0])
    assert describe.cache_info().hits == 1
    assert describe.cache_info().misses == 1


def test_what_the_parser_does_not_know_is_left_out():
    assert describe("something unheard of") == {"device": "desktop"}
