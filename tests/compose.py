"""docker-compose.yml as Compose reads it, without a Docker engine: parsed, then each string
value's `${...}` interpolated from an environment, in the forms Compose documents."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"
# `$$` (a dollar sign), `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`,
# `${NAME:?error}`, `${NAME?error}`; with the colon, an empty value counts as unset.
VARIABLE = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?)([-?])([^}]*))?\}|([A-Za-z_]\w*))")


class MissingVariableError(Exception):
    """A `${NAME:?error}` whose NAME is unset: Compose refuses to start with `error`."""


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        if match[1]:
            return "$"
        name, colon, operator, argument = match[2] or match[6], match[3], match[4], match[5]
        current = environ.get(name)
        unset = current is None or (colon == ":" and current == "")
        if operator == "?" and unset:
            raise MissingVariableError(f"{name}: {argument}")
        if operator == "-" and unset:
            return argument
        return current or ""

    return VARIABLE.sub(value, text)


def interpolated(node: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environ)
    if isinstance(node, dict):
        return {key: interpolated(value, environ) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolated(item, environ) for item in node]
    return node


def load(environ: Mapping[str, str]) -> dict[str, Any]:
    """The compose file as Compose would run it with these variables set."""
    compose: dict[str, Any] = interpolated(yaml.safe_load(COMPOSE_FILE.read_text()), environ)
    return compose


def enabled(compose: dict[str, Any], *profiles: str) -> dict[str, Any]:
    """The services `docker compose --profile P ... up` runs: those without profiles, and
    those with one of `profiles`."""
    return {
        name: service
        for name, service in compose["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }
