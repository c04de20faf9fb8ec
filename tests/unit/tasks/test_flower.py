"""The Flower launcher (tasks/flower.py): no empty credential, no open Flower beyond loopback."""

import pytest

from app.settings import Settings
from tasks import flower


def test_without_credentials_flower_gets_no_basic_auth_option_at_all():
    argv, env = flower.command(Settings(flower_basic_auth=""), {"FLOWER_BASIC_AUTH": "", "PATH": "/bin"})
    assert not any(arg.startswith("--basic_auth") for arg in argv)
    assert "FLOWER_BASIC_AUTH" not in env  # Flower would read "" as one empty credential
    assert env["PATH"] == "/bin"
    assert "--address=127.0.0.1" in argv


def test_credentials_and_the_configured_address_and_port_are_passed_on():
    settings = Settings(flower_basic_auth="admin:s3cret", flower_host="0.0.0.0", flower_port=5600)
    argv, env = flower.command(settings, {"FLOWER_BASIC_AUTH": "admin:s3cret"})
    assert argv[-2:] == ["--address=0.0.0.0", "--port=5600"]
    assert env["FLOWER_BASIC_AUTH"] == "admin:s3cret"
    assert not any("s3cret" in arg for arg in argv)  # `ps` shows argv to every local user


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "flower.internal"])
def test_beyond_loopback_without_credentials_it_refuses_to_start(host):
    with pytest.raises(flower.UnsafeFlowerError, match="FLOWER_BASIC_AUTH"):
        flower.command(Settings(flower_host=host), {})


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_on_loopback_it_starts_without_credentials(host):
    argv, _ = flower.command(Settings(flower_host=host), {})
    assert f"--address={host}" in argv


@pytest.mark.parametrize("credentials", [":", "admin:", ":s3cret", "admin", "admin:s3cret,"])
def test_a_credential_without_a_user_or_a_password_is_refused(credentials):
    with pytest.raises(flower.UnsafeFlowerError, match="user:password"):
        flower.command(Settings(flower_basic_auth=credentials), {})


@pytest.mark.parametrize("value", ["true", "1", "yes", "on", "True", "maybe"])
def test_an_unauthenticated_api_without_credentials_refuses_to_start_even_on_loopback(value):
    """Flower's unauthenticated API also answers every origin (Access-Control-Allow-Origin: *),
    so any web page a local user opens could drive the control API."""
    with pytest.raises(flower.UnsafeFlowerError, match="FLOWER_UNAUTHENTICATED_API"):
        flower.command(Settings(flower_unauthenticated_api=value), {})


@pytest.mark.parametrize("value", ["", "false", "0", "off"])
def test_an_api_left_authenticated_starts_on_loopback_without_credentials(value):
    argv, _ = flower.command(Settings(flower_unauthenticated_api=value), {})
    assert "--address=127.0.0.1" in argv


def test_with_credentials_the_unauthenticated_api_setting_is_harmless():
    """With a login, Flower ignores the setting: its API asks for the login all the same."""
    settings = Settings(flower_basic_auth="admin:s3cret", flower_unauthenticated_api="true")
    argv, _ = flower.command(settings, {})
    assert "--address=127.0.0.1" in argv
