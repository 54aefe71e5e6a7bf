"""Every REST operation, fuzzed from the app's own OpenAPI document on SQLite and PostgreSQL:
valid and invalid requests, as the roles that may call it and as anyone else. No answer is a
5xx, every answer matches what the document declares (status code, content type, body), an
invalid request is refused, and a refused request leaves the database as it was."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from callcenter.config import Settings
from callcenter.db import Database
from tests.fuzz.support import (
    ANONYMOUS,
    FORGED,
    ID_PARAMETERS,
    IDENTITIES,
    FuzzTarget,
)

# Not fuzzed here: the Twilio webhooks take form posts signed by Twilio (their signature and
# forms have tests of their own, tests/api/test_twilio_webhooks.py), and the console's HTML
# pages are not part of the OpenAPI document.
EXCLUDED_PREFIXES = ("/twilio/",)

# Who may call each operation: most examples are sent as one of them, so that the fuzz
# reaches the handler; the others go as any identity, with no token, or a forged one.
AUTHORISED: dict[str, tuple[str, ...]] = {
    "GET /healthz": (ANONYMOUS,),
    "GET /metrics": (ANONYMOUS,),
    "POST /api/v1/events": ("system",),
    "POST /api/v1/events/batch": ("system", "admin"),
    "POST /api/v1/callbacks/claim": ("agent1", "agent2", "agent3"),
    "POST /api/v1/callbacks/{callback_id}/attempts": ("agent1", "agent2"),
    "POST /api/v1/callbacks/{callback_id}/reassign": ("supervisor", "lead"),
    "POST /api/v1/callbacks/{callback_id}/release": ("supervisor", "lead"),
    "GET /api/v1/callbacks": ("agent1", "supervisor", "manager"),
    "GET /api/v1/callbacks/{callback_id}": ("agent1", "supervisor", "manager"),
    "GET /api/v1/callbacks/{callback_id}/script": ("agent1", "agent2"),
    "POST /api/v1/callbacks/{callback_id}/answers": ("agent1", "agent2"),
    "GET /api/v1/callbacks/{callback_id}/answers": ("agent1", "supervisor"),
    "POST /api/v1/answers/{answer_id}/corrections": ("agent1", "agent2", "supervisor"),
    "POST /api/v1/callbacks/{callback_id}/workorders": ("agent1", "agent2"),
    "POST /api/v1/workorders/{work_order_id}/hand-over": ("supervisor", "lead"),
    "GET /api/v1/workorders": ("supervisor", "manager"),
    "GET /api/v1/retention/catalogue": ("agent1", "lead"),
    "GET /api/v1/retention/queues/{level}": ("agent1", "supervisor", "lead", "manager"),
    "GET /api/v1/retention/cases": ("supervisor", "lead", "manager"),
    "GET /api/v1/retention/cases/{case_id}": ("supervisor", "lead", "manager"),
    "POST /api/v1/retention/cases/{case_id}/steps": ("agent1", "supervisor", "lead"),
    "GET /api/v1/reports/kpis": ("manager", "admin"),
    "GET /api/v1/reports/kpis/{table}/export": ("manager",),
    "GET /api/v1/reports/churn": ("manager", "admin"),
    "GET /api/v1/reports/churn/cases": ("manager",),
    "GET /api/v1/reports/lost-customers": ("manager",),
    "GET /api/v1/reports/churn/cases/export": ("manager",),
    "GET /api/v1/reports/churn/{table}/export": ("manager",),
    "GET /api/v1/calendar/warnings": ("supervisor", "manager"),
    "GET /api/v1/forecast": ("supervisor", "manager"),
    "GET /api/v1/roster": ("supervisor", "manager"),
    "PUT /api/v1/roster": ("supervisor", "admin"),
    "GET /api/v1/ivr/calls": ("supervisor", "manager"),
    "GET /api/v1/audit": ("manager", "admin"),
}
EVERYONE = (*IDENTITIES, ANONYMOUS, FORGED)

# Examples per operation and backend: enough to cross every branch of validation once in a
# while, few enough that both backends fuzz in well under a minute.
EXAMPLES = 16

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _document() -> dict[str, Any]:
    # The document does not depend on the database: an app that never connects is enough.
    app = create_app(
        Settings(database_url="sqlite://", scheduler_enabled=False),
        database=Database("sqlite://"),
        start_scheduler=False,
    )
    return app.openapi()


# The fuzz sends each example's token itself (as one of several users), so the generator must
# not make or drop an Authorization header of its own: a negative example "without the
# required header" would still carry the token and be a valid request.
CONFIG = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
SCHEMA = schemathesis.openapi.from_dict(_document(), config=CONFIG)
OPERATIONS = [
    f"{method.upper()} {path}"
    for path, methods in SCHEMA.raw_schema["paths"].items()
    for method in methods
    if not path.startswith(EXCLUDED_PREFIXES)
]


def test_every_operation_has_its_callers() -> None:
    """A new route must say who calls it here, or it would not be fuzzed as them."""
    assert sorted(OPERATIONS) == sorted(AUTHORISED)


@pytest.fixture(scope="module")
def asgi(target: FuzzTarget) -> Iterator[FuzzTarget]:
    # The fuzzer runs the app in an event loop of its own and starts the app's lifespan there
    # first: started now, so that whatever start-up writes is not taken for the work of the
    # first fuzzed request.
    app: Any = target.app  # an ASGI app, typed more loosely by the fuzzer
    with get_client(app):
        pass
    target.last_fingerprint = None
    yield target
    # The fuzz's requests started the app's lifespan in the fuzzer's own event loop; end it
    # before the database goes away.
    shutdown_lifespans()


def _strategy(label: str) -> st.SearchStrategy[Any]:
    method, path = label.split(" ", 1)
    operation = SCHEMA[path][method]
    modes = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    if operation.path_parameters or operation.query or operation.body:
        modes.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    return st.one_of(modes)


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_keeps_its_contract(asgi: FuzzTarget, label: str) -> None:
    authorised = AUTHORISED[label]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=_strategy(label), data=st.data())
    def fuzz(case: Any, data: st.DataObject) -> None:
        # Mostly someone who may call it; now and then anyone, or nobody.
        anyone = data.draw(st.integers(0, 3), label="anyone") == 0
        who = data.draw(st.sampled_from(EVERYONE if anyone else authorised), label="who")
        # Random ids almost never exist: half the time name a row the seed made.
        for name, value in list(case.path_parameters.items() if case.path_parameters else []):
            known = asgi.seeded.ids.get(name)
            if known and isinstance(value, int) and data.draw(st.booleans(), label=name):
                case.path_parameters[name] = data.draw(st.sampled_from(known), label=f"{name}=")
        headers = asgi.headers(who)
        before = asgi.state_before()
        response = case.call(app=asgi.app, headers=headers)
        asgi.check_after(before, response.status_code, label)
        case.validate_response(response, checks=CHECKS, headers=headers)

    fuzz()


def test_the_ids_the_fuzz_fills_in_are_still_parameters() -> None:
    """Otherwise the fuzz would only ever ask for rows that do not exist."""
    names = {
        parameter["name"]
        for methods in SCHEMA.raw_schema["paths"].values()
        for operation in methods.values()
        for parameter in operation.get("parameters", [])
    }
    assert set(ID_PARAMETERS) <= names
