"""The telephony webhooks over HTTP: trusted only when signed, and the IVR call list."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from callcenter.callbacks.service import ingest_events
from callcenter.clock import FixedClock
from callcenter.config import Settings
from callcenter.db import Database
from callcenter.ivr.rules import CallStatus
from callcenter.ivr.service import PlannedCall, list_ivr_calls, plan_dials
from callcenter.telephony.signature import HEADER, sign
from callcenter.users.models import UserRole
from tests.conftest import Users
from tests.factories import event
from tests.ivr_support import AUTH_TOKEN, twilio_settings


@pytest.fixture
def ivr_settings(database: Database) -> Settings:
    return twilio_settings(database.url, None)


@pytest.fixture
def ivr_client(
    ivr_settings: Settings, database: Database, clock: FixedClock
) -> Iterator[TestClient]:
    app = create_app(ivr_settings, database=database, clock=clock, start_scheduler=False)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def call(
    ivr_client: TestClient, ivr_settings: Settings, database: Database, clock: FixedClock
) -> PlannedCall:
    ingest_events(
        database.uow(),
        events=[event(occurred_at=clock.now() - timedelta(hours=1))],
        now=clock.now(),
        config=ivr_settings.rules,
    )
    (planned,) = plan_dials(
        database.uow(),
        now=clock.now(),
        config=ivr_settings.rules,
        telephony=ivr_settings.telephony,
        provider="twilio",
        horizon=timedelta(seconds=1),
    )
    return planned


def _form(status: str = "completed") -> dict[str, str]:
    return {"CallSid": "CA123", "CallStatus": status, "AnsweredBy": "human", "CallDuration": "42"}


def _state(database: Database) -> tuple[CallStatus, int]:
    (row,) = list_ivr_calls(database.uow())
    return row.status, len(row.steps)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {HEADER: ""},
        {HEADER: "not-a-signature"},
        {HEADER: sign("another-accounts-token", "http://testserver/x", _form())},
    ],
    ids=["unsigned", "empty", "garbage", "other-key"],
)
def test_an_unsigned_or_wrongly_signed_webhook_is_403_and_changes_nothing(
    ivr_client: TestClient, call: PlannedCall, database: Database, headers: dict[str, str]
) -> None:
    before = _state(database)
    for url in (call.request.status_callback, call.request.url):
        response = ivr_client.post(url, data=_form(), headers=headers)
        assert response.status_code == 403
    gather = call.request.url.replace("/voice", "/gather?q=working&t=1")
    response = ivr_client.post(gather, data={**_form(), "Digits": "1"}, headers=headers)
    assert response.status_code == 403
    assert _state(database) == before == (CallStatus.QUEUED, 0)


def test_a_signature_over_other_fields_or_another_url_is_refused(
    ivr_client: TestClient, call: PlannedCall, database: Database
) -> None:
    url = call.request.status_callback
    signed = sign(AUTH_TOKEN, url, _form("busy"))
    # The same signature with a changed field, or sent to another call's URL: forged.
    assert (
        ivr_client.post(url, data=_form("completed"), headers={HEADER: signed}).status_code == 403
    )
    other = url.replace(call.ref, "00000000-0000-0000-0000-000000000000")
    assert ivr_client.post(other, data=_form("busy"), headers={HEADER: signed}).status_code == 403
    assert _state(database) == (CallStatus.QUEUED, 0)
    # Signed properly, it is taken.
    assert ivr_client.post(url, data=_form("busy"), headers={HEADER: signed}).status_code == 204
    assert _state(database) == (CallStatus.BUSY, 0)


def test_the_signature_is_checked_over_the_public_url_behind_a_proxy(
    database: Database, clock: FixedClock
) -> None:
    settings = twilio_settings(database.url, None)
    settings = settings.model_copy(
        update={
            "telephony": settings.telephony.model_copy(
                update={"public_base_url": "https://cc.example.com/callcenter"}
            )
        }
    )
    app = create_app(settings, database=database, clock=clock, start_scheduler=False)
    with TestClient(app) as client:
        ingest_events(
            database.uow(),
            events=[event(occurred_at=clock.now() - timedelta(hours=1))],
            now=clock.now(),
            config=settings.rules,
        )
        (planned,) = plan_dials(
            database.uow(),
            now=clock.now(),
            config=settings.rules,
            telephony=settings.telephony,
            provider="twilio",
            horizon=timedelta(seconds=1),
        )
        public = planned.request.url
        assert public.startswith("https://cc.example.com/callcenter/twilio/ivr/")
        # The proxy strips its prefix; Twilio signed the public URL.
        local = public.replace("https://cc.example.com/callcenter", "http://testserver")
        form = {"CallSid": "CA1", "CallStatus": "in-progress", "AnsweredBy": "human"}
        response = client.post(local, data=form, headers={HEADER: sign(AUTH_TOKEN, public, form)})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/xml")
        assert "<Gather" in response.text and 'language="zh-CN"' in response.text
        signed_locally = sign(AUTH_TOKEN, local, form)
        assert client.post(local, data=form, headers={HEADER: signed_locally}).status_code == 403


def test_overseers_list_ivr_calls_with_their_keys(
    ivr_client: TestClient, call: PlannedCall, users: Users
) -> None:
    response = ivr_client.get(
        "/api/v1/ivr/calls", headers=users.headers("sup", UserRole.SUPERVISOR)
    )
    assert response.status_code == 200
    (item,) = response.json()
    assert item["ref"] == call.ref and item["status"] == "queued"
    assert item["phone_masked"] != call.request.to and item["steps"] == []
    assert (
        ivr_client.get(
            "/api/v1/ivr/calls?status=completed", headers=users.headers("sup", UserRole.SUPERVISOR)
        ).json()
        == []
    )
    agent = ivr_client.get("/api/v1/ivr/calls", headers=users.headers("a1", UserRole.AGENT))
    assert agent.status_code == 403
