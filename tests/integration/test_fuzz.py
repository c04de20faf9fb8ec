"""Fuzzing both running services from their own `/openapi.json` with schemathesis: no input,
valid or not, gets a 5xx, and every error body is in the contract's shape.

Bounded: MAX_EXAMPLES cases per operation and generation mode (valid and invalid inputs), each
request within REQUEST_TIMEOUT seconds; the counts are printed at the end of the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# Enough for each operation to meet missing, wrong-typed, overlong and edge-of-range values
# of each field, in a minute or so for both services on a quiet two-core machine.
MAX_EXAMPLES = 30
REQUEST_TIMEOUT = 15
# The error answers drop-in endpoints keep from the service they stand in for.
DROP_IN_ERRORS = {("/api/event", 400)}


def umami_error_shape(body: dict[str, Any], status: int) -> None:
    error = body.get("error")
    assert isinstance(error, dict), f"Umami error body without an error object: {body}"
    assert error.get("message"), f"no message: {body}"
    assert isinstance(error["message"], str), f"message not a string: {body}"
    assert error.get("code"), f"no code: {body}"
    assert isinstance(error["code"], str), f"code not a string: {body}"
    assert error.get("status") == status, f"error status is not the answer's: {body}"


def segment_error_shape(body: dict[str, Any], _: int) -> None:
    assert body.get("success") is False, f"Segment error body without success false: {body}"
    assert body.get("code"), f"no code: {body}"
    assert isinstance(body.get("message"), str), f"message not a string: {body}"


# The drop-in endpoints answer errors in their products' shapes (docs/dropin.md).
PRODUCT_ERROR_SHAPES = {
    "/api/send": umami_error_shape,
    **dict.fromkeys(("/v1/batch", "/v1/track", "/v1/page"), segment_error_shape),
}


def error_body_in_contract_shape(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx and 5xx is JSON `{"status": "error", "message": ...}`, with `errors` an object
    when present; a drop-in endpoint's own error answers are checked against the document
    (`response_schema_conformance`) instead."""
    if response.status_code < 400 or (case.path, response.status_code) in DROP_IN_ERRORS:
        return None
    body: Any = response.json()
    assert isinstance(body, dict), f"error body is not a JSON object: {response.text[:200]!r}"
    if case.path in PRODUCT_ERROR_SHAPES:
        PRODUCT_ERROR_SHAPES[case.path](body, response.status_code)
        return True
    assert body.get("status") == "error", f"error body without status 'error': {body}"
    assert isinstance(body.get("message"), str), f"error body without a message: {body}"
    assert body["message"], f"error body with an empty message: {body}"
    assert isinstance(body.get("errors", {}), dict), f"error body's errors is not an object: {body}"
    return True


CHECKS = [
    not_a_server_error,
    error_body_in_contract_shape,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def case_counts(figures: list[str]) -> Iterator[dict[str, Counter[str]]]:
    """Cases run per service, by response status; printed once the module is done."""
    counts: dict[str, Counter[str]] = {"ingestion": Counter(), "reporting": Counter()}
    yield counts
    for service, statuses in counts.items():
        by_status = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
        figures.append(f"fuzz {service}: {sum(statuses.values())} cases ({by_status})")


def timed_now(body: Any) -> None:
    """Set every event's timestamp in `body` to now. A generated date-time almost never falls
    in the window of accepted timestamps, so without this nearly every generated event would
    be refused for its time alone, and valid events would not flow on through the pipeline."""
    events = body.get("events") if isinstance(body, dict) and "events" in body else body
    for event in events if isinstance(events, list) else [events]:
        if isinstance(event, dict) and isinstance(event.get("timestamp"), str):
            event["timestamp"] = datetime.now(UTC).isoformat()


bounded = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # a shared machine's pauses are no failure; REQUEST_TIMEOUT bounds a hang
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("service", ["ingestion", "reporting"])
def test_service_answers_any_input_without_5xx_and_in_the_contract_shape(
    service: str, mode: GenerationMode, pipeline: dict[str, str], case_counts: dict[str, Counter[str]]
) -> None:
    """Every operation of the service's document, with inputs that follow it (`positive`) or
    break it (`negative`). On ingestion, with the worker running, the valid events flow on
    through the whole pipeline."""
    schema = schemathesis.openapi.from_url(f"{pipeline[service]}/openapi.json", timeout=REQUEST_TIMEOUT)
    counts = case_counts[service]
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # the document is valid: tests/unit/web/test_openapi.py
        operation = result.ok()
        if mode is GenerationMode.NEGATIVE and not (len(operation.query) or len(operation.body)):
            continue  # nothing to break

        @bounded
        @given(case=operation.as_strategy(generation_mode=mode), now=st.booleans())
        def fuzz(case: Case, now: bool) -> None:
            if now:
                timed_now(case.body)
            response = case.call_and_validate(checks=CHECKS, timeout=REQUEST_TIMEOUT)
            counts[str(response.status_code)] += 1

        fuzz()
