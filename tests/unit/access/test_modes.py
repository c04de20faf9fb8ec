import logging

import pytest

from app import create_app
from app.settings import Settings


def test_an_unknown_auth_mode_is_refused_at_start():
    with pytest.raises(ValueError, match="AUTH_MODE='off' must be one of: keys, open"):
        Settings.from_env({"AUTH_MODE": "off"})


def test_keys_is_the_default():
    assert Settings.from_env({}).auth_mode == "keys"


def test_open_mode_is_logged_as_a_warning_at_start(settings, caplog):
    with caplog.at_level(logging.WARNING):
        create_app("reporting", settings)
    assert any(
        record.levelno == logging.WARNING and "AUTH_MODE=open" in record.getMessage()
        for record in caplog.records
    )


def test_keys_mode_logs_no_such_warning(keys_settings, caplog):
    with caplog.at_level(logging.WARNING):
        create_app("reporting", keys_settings)
    assert not any("AUTH_MODE" in record.getMessage() for record in caplog.records)
