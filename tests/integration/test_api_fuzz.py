"""Schemathesis fuzzes every operation of the OpenAPI document, in process (ASGI), with real
credentials: the widget's token for the public conversation API, a live session of an admin,
an agent or an analyst for the staff APIs. Any 5xx fails, any status code the document does
not declare for the operation fails, and every error is the API's own
``{"error": {"code": ...}}``.

The example count is bounded (``PARLEY_FUZZ_EXAMPLES`` per operation, 40 by default) so the
test fits a CI run on two cores; raise it locally for a deeper search, and narrow it to some
paths with ``PARLEY_FUZZ_PATHS`` (a regex).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402 - after importorskip
from hypothesis import strategies as st  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.python import asgi  # noqa: E402
from schemathesis.specs.openapi.checks import status_code_conformance  # noqa: E402

from core.config import Settings  # noqa: E402
from tests.credentials import STAFF_ROLES, StaffTokens, bearer, staff_token  # noqa: E402
from tests.stack import free_port  # noqa: E402
from tests.unit.conftest import ScriptedDialogue  # noqa: E402
from web.app import create_app  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "40"))
CALL_TIMEOUT_S = 60  # a loaded two-core CI machine, not a measure of speed
ONLY = os.environ.get("PARLEY_FUZZ_PATHS")  # a regex, to fuzz some paths while debugging
# No input to fuzz, and an answer that is about the machine, not the request: /readyz is 503
# while Rasa or the NLU service is down (none runs here), /metrics is for this machine only.
OPERATIONS_ROUTES = r"^/(readyz|metrics)$"
WIDGET_PREFIX = "/api/v1/conversations/{conversation_id}"
ANONYMOUS = {("POST", "/api/v1/conversations"), ("POST", "/api/v1/auth/login"),
             ("GET", "/api/v1/widget/config"), ("GET", "/healthz")}


@dataclass
class FuzzedApi:
    app: Any
    settings: Settings
    conversation_id: str
    widget_token: str
    staff: StaffTokens


def fuzz_settings(folder: Path) -> Settings:
    return Settings(environment="test", var_dir=folder / "var", models_dir=folder / "models",
                    secret_key=SecretStr("fuzz-test-secret-key-0123456789"),
                    rasa_token=SecretStr("fuzz-rasa-token"),
                    max_message_chars=4000, max_body_bytes=16 * 1024,
                    nlu_port=free_port(), action_port=free_port(),
                    rasa_url=f"http://127.0.0.1:{free_port()}",
                    # The limits are tested elsewhere; here they would only hide deeper paths.
                    rate_conversations_per_minute=1e6, rate_conversations_burst=10**6,
                    rate_messages_per_minute=1e6, rate_messages_burst=10**6)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedApi]:
    settings = fuzz_settings(tmp_path_factory.mktemp("fuzz"))
    staff = StaffTokens.create(settings)
    app = create_app(settings, dialogue=ScriptedDialogue())
    # Starts the app's lifespan; the fuzzer's calls share it.
    with asgi.get_client(app) as client:  # type: ignore[arg-type]
        created = client.post("/api/v1/conversations", json={"locale": "en"})
        for lang in ("en", "zh"):  # loads the retriever's models, which takes seconds
            asked = client.post("/api/v1/kb/ask", headers=bearer(staff.tokens["admin"]),
                                json={"question": "returns", "lang": lang}, timeout=120)
            assert asked.status_code == 200, asked.text
    assert created.status_code == 201, created.text
    body = created.json()
    try:
        yield FuzzedApi(app=app, settings=settings, conversation_id=body["id"],
                        widget_token=body["token"], staff=staff)
    finally:
        asgi.shutdown_lifespans()


def authorize(case: Any, api: FuzzedApi, *, own: bool, role: str) -> None:
    """The credential the operation is meant for, on the conversation the token opens (or,
    when ``own`` is false, whatever conversation id the fuzzer made up)."""
    path, method = case.operation.path, case.operation.method.upper()
    if own and "conversation_id" in (case.path_parameters or {}):
        case.path_parameters["conversation_id"] = api.conversation_id
    if (method, path) in ANONYMOUS:
        case.headers.pop("authorization", None)
    elif path.startswith(WIDGET_PREFIX):
        case.headers["Authorization"] = f"Bearer {api.widget_token}"
    elif path == "/api/v1/auth/logout":  # ends the session it is called with: a fresh one
        case.headers.update(bearer(staff_token(api.settings, api.staff.ids[role])))
    else:
        case.headers["Authorization"] = f"Bearer {api.staff.tokens[role]}"


def fuzz(operation: Any, api: FuzzedApi) -> str | None:
    """Up to ``EXAMPLES`` cases of ``operation``, valid and invalid; the failure, if any."""
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    strategy = st.one_of([operation.as_strategy(generation_mode=mode) for mode in modes])

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    @given(case=strategy, own=st.booleans(), role=st.sampled_from(STAFF_ROLES))
    def check(case: Any, own: bool, role: str) -> None:
        authorize(case, api, own=own, role=role)
        response = case.call(timeout=CALL_TIMEOUT_S)
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
        if response.status_code >= 400:
            error = response.json().get("error") or {}
            assert isinstance(error.get("code"), str) and error["code"], response.text

    try:
        check()
    except (Exception, FailureGroup) as exc:  # a FailureGroup is a BaseExceptionGroup
        return f"{operation.label}: {describe(exc)}"
    return None


def describe(exc: BaseException) -> str:
    """The failure and, for a group (Hypothesis's flaky-test report), what is inside it."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, BaseExceptionGroup) and not isinstance(exc, FailureGroup):
        text += "".join(f"\n  - {describe(inner)}" for inner in exc.exceptions)
    return text


def test_bad_input_is_a_documented_4xx_never_a_5xx(api: FuzzedApi) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app).exclude(
        path_regex=OPERATIONS_ROUTES)
    if ONLY:
        schema = schema.include(path_regex=ONLY)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert ONLY or len(operations) > 40  # the whole document, not a part of it
    failures = [failure for operation in operations
                if (failure := fuzz(operation, api)) is not None]
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)
