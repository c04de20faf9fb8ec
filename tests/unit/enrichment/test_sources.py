import pytest

from app.enrichment.sources import campaign, known_name, referral_source

PAGE = "https://example.com/pricing"


def test_campaign_fields_come_from_the_urls_utm_parameters():
    url = PAGE + "?utm_source=newsletter&utm_medium=email&utm_campaign=launch&utm_content=top&utm_term=x"
    assert campaign(url) == {
        "source": "newsletter",
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "launch",
        "utm_content": "top",
        "utm_term": "x",
    }


@pytest.mark.parametrize(
    ("query", "source"),
    [
        ("?ref=producthunt", "producthunt"),
        ("?source=podcast", "podcast"),
        ("?ref=a&source=b", "a"),
        ("?utm_source=c&ref=a", "c"),
        ("?utm_source=&ref=a", "a"),
    ],
)
def test_source_is_utm_source_else_ref_else_source(query, source):
    assert campaign(PAGE + query)["source"] == source


def test_a_url_without_parameters_names_no_campaign():
    assert campaign(PAGE) == {}
    assert campaign(None) == {}


@pytest.mark.parametrize(
    ("referrer", "source"),
    [
        ("https://www.google.com/", "Google"),
        ("https://www.google.de/search?q=x", "Google"),
        ("https://google.co.uk/", "Google"),
        ("https://www.google.com.br/", "Google"),
        ("https://www.bing.com/search?q=x", "Bing"),
        ("https://duckduckgo.com/", "DuckDuckGo"),
        ("https://search.yahoo.com/", "Yahoo!"),
        ("https://yandex.ru/", "Yandex"),
        ("https://www.baidu.com/", "Baidu"),
        ("https://www.ecosia.org/", "Ecosia"),
        ("https://m.facebook.com/", "Facebook"),
        ("https://l.facebook.com/l.php?u=x", "Facebook"),
        ("https://www.instagram.com/", "Instagram"),
        ("https://t.co/abc", "X"),
        ("https://twitter.com/someone", "X"),
        ("https://x.com/someone", "X"),
        ("https://www.linkedin.com/feed/", "LinkedIn"),
        ("https://old.reddit.com/r/python", "Reddit"),
        ("https://www.youtube.com/watch?v=1", "YouTube"),
        ("https://github.com/org/repo", "GitHub"),
        ("https://news.ycombinator.com/item?id=1", "Hacker News"),
        ("https://mail.google.com/", "Gmail"),
        ("https://blog.example.org/post", "blog.example.org"),
        ("https://www.someones-site.net/", "someones-site.net"),
    ],
)
def test_a_referrer_names_its_source_by_its_well_known_name_or_host(referrer, source):
    assert referral_source(PAGE, referrer) == source


@pytest.mark.parametrize("host", ["google.evil.com", "google.example.co.uk", "notgoogle.com"])
def test_a_brand_name_inside_another_sites_domain_is_not_the_brand(host):
    assert known_name(host) is None


@pytest.mark.parametrize(
    ("url", "referrer"),
    [
        ("https://example.com/a", "https://example.com/b"),
        ("https://www.example.com/a", "https://example.com/b"),
        ("https://example.com/a", "https://WWW.Example.com/b"),
    ],
)
def test_a_referral_from_the_site_itself_is_no_source(url, referrer):
    assert referral_source(url, referrer) is None


@pytest.mark.parametrize("referrer", [None, "", "not a url", "https://[::1/"])
def test_no_usable_referrer_is_no_source(referrer):
    assert referral_source(PAGE, referrer) is None
