from app.enrichment import enrich
from tools.factories import make_message

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def queued(**fields):
    return {**make_message(), **fields}


def test_an_event_gains_its_source_campaign_and_device_and_loses_its_user_agent():
    message = queued(
        url="https://example.com/?utm_medium=cpc&utm_campaign=spring",
        referrer="https://www.google.de/",
        user_agent=CHROME,
    )
    enriched = enrich(message)
    assert "user_agent" not in enriched
    assert enriched == {key: value for key, value in message.items() if key != "user_agent"} | {
        "source": "Google",
        "utm_medium": "cpc",
        "utm_campaign": "spring",
        "device": "desktop",
        "browser": "Chrome",
        "browser_version": "131",
        "os": "Windows",
        "os_version": "10",
    }


def test_an_event_with_nothing_to_derive_is_stored_as_queued():
    message = queued()
    assert enrich(message) == message


def test_a_self_referral_names_no_source():
    enriched = enrich(queued(url="https://example.com/a", referrer="https://www.example.com/b"))
    assert "source" not in enriched


def test_an_enriched_event_enriched_again_is_unchanged():
    once = enrich(queued(url="https://example.com/?ref=hn", user_agent=CHROME))
    assert enrich(once) == once
