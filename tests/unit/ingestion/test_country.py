import pytest

from app.ingestion.country import country_of


@pytest.mark.parametrize(
    ("address", "country"),
    [
        ("8.8.8.8", "US"),
        ("1.0.16.1", "JP"),
        ("2001:4860:4860::8888", "US"),
    ],
)
def test_an_allocated_address_has_its_registrys_country(address, country):
    assert country_of(address) == country


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "::1", "not an address", ""])
def test_a_private_address_or_no_address_has_no_country(address):
    assert country_of(address) is None
