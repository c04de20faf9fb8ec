"""Every curl example of the README and docs/ runs as written: it sends to a route of the
service on the port it names, with parameters that route takes, and with a key where the
route asks for one; the variables it uses are set before it. (The integration test
test_walkthrough.py runs the README's walkthrough itself.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import fakeredis
import pytest
from flask import Flask
from pymongo.database import Database
from werkzeug.exceptions import MethodNotAllowed, NotFound

from app import Service, create_app
from app.settings import Settings
from tests.markdown import code_blocks, section

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
# Where `make run` serves each service (the Procfile's defaults).
SERVICES: dict[int, Service] = {3000: "ingestion", 4000: "reporting"}

URL = re.compile(r"(?:https?://)?(?:localhost|127\.0\.0\.1):(\d+)(/[^\s'\"?]*)(?:\?([^\s'\"]*))?")
SENDS_DATA = re.compile(r"\s(?:-d|--data[\w-]*|-F|--form|-T|--upload-file)\s")
METHOD = re.compile(r"\s(?:-X|--request)\s+(\w+)")
USED = re.compile(r"\$\{?([A-Za-z_]\w*)")
ASSIGNED = re.compile(r"(?:^|[\s;(])([A-Za-z_]\w*)=|\bfor\s+([A-Za-z_]\w*)\s+in\b", re.MULTILINE)


@dataclass(frozen=True)
class Curl:
    """One curl command of a page, with the shell text that comes before it there."""

    where: str
    command: str
    before: str

    @property
    def url(self) -> re.Match[str]:
        url = URL.search(self.command)
        assert url, f"{self.where}: no URL of a local service in {self.command}"
        return url

    @property
    def service(self) -> Service | None:
        return SERVICES.get(int(self.url[1]))

    @property
    def path(self) -> str:
        return self.url[2]

    @property
    def parameters(self) -> list[str]:
        return [name for name, _ in parse_qsl(self.url[3] or "", keep_blank_values=True)]

    @property
    def method(self) -> str:
        named = METHOD.search(self.command)
        return named[1] if named else "POST" if SENDS_DATA.search(self.command) else "GET"


def assigned(shell: str) -> set[str]:
    return {name for pair in ASSIGNED.findall(shell) for name in pair if name}


def commands(shell: str) -> Iterator[tuple[str, int]]:
    """Each curl command of a shell block (its continued lines joined), and where it starts."""
    for start in re.finditer(r"\bcurl\s", shell):
        line_end = re.compile(r"(?<!\\)\n").search(shell, start.start())
        yield shell[start.start() : line_end.start() if line_end else None], start.start()


def curl_examples() -> list[Curl]:
    examples = []
    for page in PAGES:
        before = ""
        for block in code_blocks(page.read_text()):
            if not block.is_shell:
                continue
            for command, offset in commands(block.text):
                line = block.line + 1 + block.text.count("\n", 0, offset)
                where = f"{page.relative_to(ROOT)}:{line}"
                examples.append(Curl(where, command, before + block.text[:offset]))
            before += block.text
    return examples


EXAMPLES = curl_examples()
# The docs go on from the README's walkthrough: what it sets ($KEY) every page may use.
WALKTHROUGH_SETS = assigned(
    "".join(b.text for b in code_blocks(section(README.read_text(), "First event and its stats")))
)


@pytest.fixture
def apps(
    settings: Settings, db: Database[Any], counter_store: fakeredis.FakeRedis
) -> Iterator[dict[Service, Flask]]:
    """Both services as `make run` starts them: AUTH_MODE=keys."""
    keys = replace(settings, auth_mode="keys")
    apps = {service: create_app(service, keys) for service in SERVICES.values()}
    yield apps
    apps["ingestion"].extensions["site_registry"].stop()


def test_the_docs_have_curl_examples() -> None:
    assert len({example.where.split(":")[0] for example in EXAMPLES}) >= 3


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.where)
def test_a_curl_example_sends_to_a_route_of_the_service_on_its_port(
    example: Curl, apps: dict[Service, Flask]
) -> None:
    assert example.service, f"{example.where}: port {example.url[1]} is no service's ({SERVICES})"
    adapter = apps[example.service].url_map.bind("localhost")
    try:
        adapter.match(example.path, method=example.method)
    except (NotFound, MethodNotAllowed) as error:
        pytest.fail(f"{example.where}: {example.service} has no {example.method} {example.path} ({error})")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.where)
def test_a_curl_example_sends_only_parameters_its_route_takes(
    example: Curl, apps: dict[Service, Flask]
) -> None:
    assert example.service
    document = apps[example.service].test_client().get("/openapi.json").get_json()
    operation = document["paths"].get(example.path, {}).get(example.method.lower())
    assert operation, f"{example.where}: {example.service} documents no {example.method} {example.path}"
    taken = {parameter["name"] for parameter in operation.get("parameters", [])}
    assert set(example.parameters) - taken == set(), example.where


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.where)
def test_a_curl_example_carries_a_key_where_its_route_asks_for_one(
    example: Curl, apps: dict[Service, Flask]
) -> None:
    assert example.service
    without_key = (
        apps[example.service]
        .test_client()
        .open(example.path, method=example.method, query_string=example.url[3] or "")
    )
    if without_key.status_code == 401:
        assert "Authorization: Bearer $" in example.command, f"{example.where}: {without_key.get_json()}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.where)
def test_a_curl_example_uses_only_variables_set_before_it(example: Curl) -> None:
    known = assigned(example.before) | WALKTHROUGH_SETS
    assert set(USED.findall(example.command)) - known == set(), example.where
