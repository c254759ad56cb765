"""Fuzzing the OpenAPI document: every operation, generated requests, strict response checks.

Schemathesis reads the app's own ``/openapi.json`` and generates requests for every operation
in it, valid ones and invalid ones, sent in-process to the app (lifespan included) on a
temporary SQLite store. Each request carries the operator key, a retailer's key or whatever
header the generator made up; it names a retailer that exists (the caller's own or another
tenant's) or a generated one; a body goes as JSON or, now and then, as text. So the fuzzer gets
past authentication and tenancy as well as failing them. Every response must be no server
error, with a documented status code, content type and headers, and a body that validates
against the schema documented for that status.

The test proves that the operations fuzzed are exactly those of the document (a new endpoint
is fuzzed without touching this file), that over a thousand requests were made and that the
keys got past authentication on every operation, and that no response broke a check; each
broken check is reported once per operation, with a curl command that reproduces it.
Generation is derandomized: every run sends the same requests.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from traceback import format_exception
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cartpredict.api.app import create_app
from tests.support.factories import OPERATOR_KEY, make_settings, retailer_spec

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Examples per operation and generation mode. An operation without inputs has no negative
# mode, and Hypothesis stops early once it has tried every caller on it.
EXAMPLES = {GenerationMode.POSITIVE: 70, GenerationMode.NEGATIVE: 40}
MIN_REQUESTS = 1000
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

KNOWN = ("fuzz_a", "fuzz_b")  # retailers made before fuzzing, offering every shipping speed
SPEC = {"shipping_speeds": ["standard", "express", "overnight", "same_day", "pickup"]}
# Who calls: the operator, a known retailer, or whatever Authorization the generator made.
CALLERS = ("operator", *KNOWN, "generated")
# Which retailer the path and the body name: a known one, or the generated id.
TARGETS = (*KNOWN, "generated")
# How a body is sent: as generated (JSON), or as text, which the service refuses.
MEDIA = ("generated", "generated", "generated", "text/plain")


@dataclass
class Fuzz:
    """The keys that work, kept working when the fuzzer rotates a key or erases a known
    retailer; requests and statuses per operation; distinct failures, each with a reproduction."""

    schema: BaseSchema
    keys: dict[str, str] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    failures: dict[str, str] = field(default_factory=dict)

    def onboard(self, retailer_id: str) -> None:
        case = self.schema["/retailer"]["POST"].Case(
            body=retailer_spec(retailer_id, **SPEC),
            headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
        )
        response = case.call()
        assert response.status_code == 201, response.text
        self.keys[retailer_id] = response.json()["api_key"]

    def send(self, case: Case, caller: str, target: str, media: str) -> None:
        self._prepare(case, caller, target, media)
        label = case.operation.label
        context = f"caller {caller}, retailer {target}"
        if case.operation.body:
            context += f", body as {media}"
        self.requests[label] += 1
        try:
            response = case.call()
        except Exception as exc:  # in-process, an unhandled error is raised after its 500
            self._fail(f"{label}: {type(exc).__name__}", context, "".join(format_exception(exc)))
            return
        self.statuses[label][response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                self._fail(f"{label}: {failure.title}", context, str(group))
        self._follow(case, response)

    def _prepare(self, case: Case, caller: str, target: str, media: str) -> None:
        headers = dict(case.headers or {})
        if caller == "operator":
            headers["Authorization"] = f"Bearer {OPERATOR_KEY}"
        elif caller in self.keys:
            headers["Authorization"] = f"Bearer {self.keys[caller]}"
        if media != "generated" and case.operation.body:
            headers["Content-Type"] = media
        case.headers = headers
        if target in self.keys:
            if isinstance((case.path_parameters or {}).get("retailer_id"), str):
                case.path_parameters = {**case.path_parameters, "retailer_id": target}
            if case.operation.body:
                case.body = _naming(case.body, target)

    def _follow(self, case: Case, response: schemathesis.Response) -> None:
        """A key issued for a known retailer replaces its old one; an erased known retailer
        is onboarded again."""
        retailer_id = (case.path_parameters or {}).get("retailer_id")
        if retailer_id not in self.keys:
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("api_key"), str):
            self.keys[retailer_id] = body["api_key"]
        elif case.method.upper() == "DELETE" and response.status_code == 204:
            self.onboard(retailer_id)

    def _fail(self, title: str, context: str, detail: str) -> None:
        self.failures.setdefault(title, f"({context})\n{detail}")

    def summary(self) -> str:
        lines = [
            f"{n:5d} {label}  "
            + " ".join(f"{status}x{k}" for status, k in sorted(self.statuses[label].items()))
            for label, n in sorted(self.requests.items())
        ]
        total = f"{self.requests.total():5d} in all"
        return "\n".join(["requests per operation, by status:", *lines, total])


def _naming(body: Any, retailer_id: str) -> Any:
    """The body with every string ``retailer_id`` in it replaced by this one."""
    if isinstance(body, dict):
        return {
            k: retailer_id if k == "retailer_id" and isinstance(v, str) else _naming(v, retailer_id)
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [_naming(item, retailer_id) for item in body]
    return body


def _has_inputs(operation: APIOperation) -> bool:
    return bool(operation.body) or any(True for _ in operation.iter_parameters())


def _documented_operations(raw: dict[str, Any]) -> set[str]:
    return {
        f"{method.upper()} {path}"
        for path, item in raw["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def _fuzz(state: Fuzz, operation: APIOperation, mode: GenerationMode, examples: int) -> None:
    @hypothesis.settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],  # failures are collected, not raised: nothing to shrink
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @hypothesis.given(
        case=operation.as_strategy(generation_mode=mode),
        caller=st.sampled_from(CALLERS),
        target=st.sampled_from(TARGETS),
        media=st.sampled_from(MEDIA),
    )
    def send(case: Case, caller: str, target: str, media: str) -> None:
        state.send(case, caller, target, media)

    send()


def test_every_operation_answers_as_documented_under_fuzzing(sqlite_url: str) -> None:
    app = create_app(make_settings(sqlite_url))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    state = Fuzz(schema)
    try:
        for retailer_id in KNOWN:
            state.onboard(retailer_id)
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode, examples in EXAMPLES.items():
                if mode is GenerationMode.NEGATIVE and not _has_inputs(operation):
                    continue  # nothing to make invalid
                _fuzz(state, operation, mode, examples)
    finally:
        asgi.shutdown_lifespans()  # schemathesis keeps the app's lifespan running until told

    print(f"\n{state.summary()}")
    assert set(state.requests) == _documented_operations(schema.raw_schema)
    assert state.requests.total() >= MIN_REQUESTS, state.summary()
    # The keys work: no operation answered 401 to everything.
    assert all(set(statuses) - {401} for statuses in state.statuses.values()), state.summary()
    if state.failures:
        report = "\n\n".join(f"=== {title} {detail}" for title, detail in state.failures.items())
        pytest.fail(f"{len(state.failures)} distinct failures:\n\n{report}", pytrace=False)
