"""The OpenAPI schema at `/openapi.json`: every route documented, and no route answers 5xx to
what schemathesis generates from it (with a valid key, against the shared real server)."""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error

from tests.helpers import Server

# Small, so that the run covers every route in ~1-2 min on two shared cores.
MAX_EXAMPLES = 25
# Routes that can queue a generation; whatever a generated request starts is cancelled at once
# (a queued job stops before it runs, a running one within one step), so no backlog builds up.
_GENERATING = {
    ("POST", "/v1"),
    ("POST", "/v1/videos"),
    ("POST", "/v1/videos/generations"),
    ("POST", "/v1/videos/edits"),
    ("POST", "/v1/videos/extensions"),
}


def _started(case: Case, response: schemathesis.Response) -> list[str]:
    """The taskUUIDs of the jobs a successful request queued."""
    if (case.method.upper(), case.path) not in _GENERATING or response.status_code // 100 != 2:
        return []
    body = response.json()
    if case.path == "/v1/videos":
        return [body["id"]]
    if case.path.startswith("/v1/videos/"):  # the xAI door's
        return [body["request_id"]]
    return [i["taskUUID"] for i in body.get("data", []) if i.get("taskType") == "videoInference"]


def _no_server_error(strategy: SearchStrategy[Case], server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.key}"}

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a 5xx found once is found every time
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Case) -> None:
        response = case.call(headers=headers, timeout=30)
        for task_uuid in _started(case, response):
            url = f"{server.base}/v1/tasks/{task_uuid}/cancel"
            cancelled = httpx.post(url, headers=headers, timeout=30)
            assert cancelled.status_code < 500, cancelled.text  # a finished task may refuse
        case.validate_response(response, checks=[not_a_server_error], headers=headers)

    call()


def test_no_route_answers_a_server_error(server: Server):
    # compat: schemathesis.pytest.from_fixture (the lazy loader a per-session server needs)
    # breaks on pytest 9.2 (`Function._nodeid` is gone), so the operations are driven here with
    # schemathesis' strategies, and every failure is collected before the test fails.
    schema = schemathesis.openapi.from_url(f"{server.base}/openapi.json", timeout=10)
    # The real key goes in the header; generated bearer tokens would only exercise the 401s.
    schema.config.generation.update(with_security_parameters=False)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8, [op.label for op in operations]
    failures = []
    for op in operations:
        strategies = {
            "positive": op.as_strategy(generation_mode=GenerationMode.POSITIVE),
            "negative": op.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        }
        if examples := schema.get_strategies_from_examples(op):
            strategies["examples"] = st.one_of(examples)
        for phase, strategy in strategies.items():
            try:
                _no_server_error(strategy, server)
            except Unsatisfiable:
                assert phase == "negative"  # nothing in this operation can be made invalid
            except (Exception, BaseExceptionGroup) as exc:  # collected: reports every operation
                failures.append(f"{op.label} ({phase}): {exc}")
    assert not failures, "\n\n".join(failures) + f"\n\nserver log: {server.log}"


def test_every_route_has_a_summary_and_examples(server: Server):
    doc = httpx.get(f"{server.base}/openapi.json", timeout=10).json()
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    operations = {
        f"{method.upper()} {path}": op
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    assert {"POST /v1", "GET /", "GET /health", "GET /v1/models"} <= set(operations)
    for name, op in operations.items():
        assert op.get("summary"), f"{name} has no summary"
        media = [m for r in op["responses"].values() for m in r.get("content", {}).values()]
        has_example = any("example" in m or "examples" in m for m in media)
        # A route answering a pydantic model is documented by the model's schema (examples
        # in its fields); a free-form one needs examples (api/docs.py).
        modelled = any("$ref" in m.get("schema", {}) for m in media)
        assert has_example or modelled, f"{name} has no response example (add one in api/docs.py)"
    body = operations["POST /v1"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["type"] == "array"
    [task] = body["examples"]["videoInference"]["value"]
    assert task["taskType"] == "videoInference" and task["model"] == "xai:grok-imagine@video"
    assert operations["POST /v1"]["security"] == [{"bearerAuth": []}]
