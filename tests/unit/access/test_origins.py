import pytest

from app.access.origins import domain_name, page_host


def test_a_request_without_origin_or_referer_comes_from_no_page():
    assert page_host(None, None) is None
    assert page_host("", "") is None


@pytest.mark.parametrize(
    ("origin", "referer", "host"),
    [
        ("https://Shop.Example:8443", None, "shop.example"),  # port and case do not count
        ("http://localhost:3000", "https://other.test/page", "localhost"),  # Origin wins
        (None, "https://blog.example/post?x=1", "blog.example"),
        ("https://example.com.", None, "example.com"),
        ("null", None, ""),  # an opaque origin names no host
        ("null", "https://example.com/", ""),  # and a Referer does not make up for it
        ("not a url", None, ""),
        ("http://[::1]:8000", None, "::1"),
    ],
)
def test_the_page_host_is_the_origin_host_else_the_referer_host(origin, referer, host):
    assert page_host(origin, referer) == host


def test_a_domain_is_stored_as_a_lower_case_host():
    assert domain_name(" WWW.Example.COM. ") == "www.example.com"


@pytest.mark.parametrize("value", ["", "https://example.com", "example.com:8080", "example.com/shop", "a b"])
def test_a_url_or_host_with_port_is_not_a_domain(value):
    with pytest.raises(ValueError, match="not a host name"):
        domain_name(value)
