"""Review of issue #30 (review-30): compose findings. Fails on main as of 74d12d1."""

from __future__ import annotations

import pytest

from app.settings import Settings
from tasks import flower
from tests import compose
from tests.unit.test_compose import STACK_ENV


def test_the_flower_profile_without_credentials_does_not_restart_for_ever():
    """The issue: Flower "refuses to start, under `restart: unless-stopped`". It now runs only
    with `--profile flower`, but `docker compose --profile flower up` with no FLOWER_BASIC_AUTH
    in .env (its default is empty) still runs the launcher, which exits, under the same
    `restart: unless-stopped`: a crash loop, as before, one flag later."""
    service = compose.enabled(compose.load(STACK_ENV), "flower")["flower"]
    environment = {name: str(value) for name, value in service["environment"].items()}
    assert service["command"] == ["python", "-m", "tasks.flower"]
    with pytest.raises(flower.UnsafeFlowerError):
        flower.command(Settings.from_env(environment), environment)
    assert service.get("restart") not in ("always", "unless-stopped")
