"""Twilio answers errors (500, 503, 429) and times out: each failure is an attempt recorded
with its reason and tried again at a later slot by the rules (rule CB-5); a request whose
answer never came is never sent a second time, so no customer is called twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import col

from api.app import create_app
from callcenter.callbacks.rules import AttemptOutcome, CallbackStatus
from callcenter.clock import FixedClock
from callcenter.db import Database
from callcenter.ivr.models import IvrCall
from callcenter.ivr.rules import CallStatus
from callcenter.telephony.simulator import Keys
from callcenter.windows.rules import is_open
from tests.integration.test_ivr_calls import Centre
from tests.ivr_support import FakeCall, FakeTwilio, Fault, fake_twilio, twilio_settings

# The client gives up after TIMEOUT; the slow fake answers after SLOW.
TIMEOUT, SLOW = 0.3, 1.0
SATISFIED = ["1", "1", "1", "5"]


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with fake_twilio() as fake:
        yield fake


@pytest.fixture
def centre(database: Database, clock: FixedClock, twilio: FakeTwilio) -> Iterator[Centre]:
    settings = twilio_settings(
        database.url, twilio.url, calls_per_second=10, request_timeout_seconds=TIMEOUT
    )
    app = create_app(settings, database=database, clock=clock, start_scheduler=False)
    with TestClient(app) as client:
        yield Centre(database, clock, settings, twilio, client)


def callback_of(centre: Centre, form: dict[str, list[str]]) -> int:
    """The callback a request to Twilio was for (its voice URL carries the call's ref)."""
    ref = form["Url"][0].rstrip("/").split("/")[-2]
    with centre.database.uow() as uow:
        return int(
            uow.session.execute(
                sa.select(col(IvrCall.callback_id)).where(col(IvrCall.ref) == ref)
            ).scalar_one()
        )


def answer(centre: Centre, call: FakeCall) -> None:
    transcript = centre.player().play(
        call.sid, call.request(), Keys(SATISFIED), answered_by="human"
    )
    assert transcript.lines[-1] == "HANGUP"


def wait_for_calls(fake: FakeTwilio, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(fake.calls) < count:  # the slow fake takes its call after the client left
        assert time.monotonic() < deadline, f"the fake took {len(fake.calls)} of {count} calls"
        time.sleep(0.05)


def test_errors_and_timeouts_are_attempts_retried_later_and_nobody_is_called_twice(
    centre: Centre,
) -> None:
    fake, rules = centre.fake, centre.settings.rules
    ids = [centre.intake(phone=f"1390000{i:04d}") for i in range(8)]
    fake.faults = [
        Fault(status=500),
        Fault(status=503),
        Fault(status=429),
        Fault(delay=SLOW, placed=True),  # Twilio took it; its answer came too late
        Fault(delay=SLOW, placed=False),  # Twilio never took it; we cannot tell
    ]
    report = centre.dial()
    assert (report.planned, report.placed, report.refused) == (8, 3, 5)
    requested = [callback_of(centre, form) for form in fake.requests]
    assert sorted(requested) == sorted(ids)  # one request per callback, none twice
    refused, took_late, never_took = requested[:3], requested[3], requested[4]
    placed_now = requested[5:]

    dialled_at = centre.clock.now()
    for callback_id, code in zip(refused, (500, 503, 429), strict=True):
        after = centre.callback(callback_id)
        (attempt,) = after.attempts
        assert attempt.outcome is AttemptOutcome.NO_ANSWER
        assert f"Twilio refused the call: {code}" in (attempt.note or "")
        # Tried again after the retry interval, in a calling window (rule CB-5).
        assert after.status is CallbackStatus.PENDING
        assert after.available_at >= dialled_at + rules.attempts.retry_interval
        assert is_open(after.available_at, ZoneInfo("Asia/Shanghai"), rules.windows)
    for callback_id in (took_late, never_took):
        # Unknown whether the call exists: no attempt yet, and the customer stays "in a call".
        after = centre.callback(callback_id)
        assert after.attempts == [] and after.status is CallbackStatus.CLAIMED
        (written,) = centre.calls(callback_id)
        assert written.status is CallStatus.QUEUED

    # Ticks of the dialer meanwhile send nothing again, neither now nor a little later.
    wait_for_calls(fake, 4)
    for _ in range(3):
        centre.clock.advance(timedelta(seconds=20))
        assert centre.dial().planned == 0
    assert len(fake.requests) == 8

    # The call Twilio took after all goes on: the customer answers it, as the others.
    by_callback = {callback_of(centre, call.form): call for call in fake.calls}
    for callback_id in (took_late, *placed_now):
        answer(centre, by_callback[callback_id])
        assert centre.callback(callback_id).status is CallbackStatus.COMPLETED

    # The one Twilio never took is settled as lost once its confirmation is overdue.
    centre.clock.advance(centre.settings.telephony.confirm_within)
    report = centre.dial()
    assert (report.settled, report.planned) == (1, 0)
    lost = centre.callback(never_took)
    assert [a.outcome for a in lost.attempts] == [AttemptOutcome.NO_ANSWER]
    assert lost.status is CallbackStatus.PENDING and lost.available_at > centre.clock.now()

    # Twilio is well again: at their retry slots the four are called, once each.
    retries = [*refused, never_took]
    centre.clock.set(max(centre.callback(i).available_at for i in retries))
    report = centre.dial()
    assert (report.planned, report.placed) == (4, 4)
    wait_for_calls(fake, 8)
    for call in fake.calls[4:]:
        answer(centre, call)

    per_callback = Counter(callback_of(centre, call.form) for call in fake.calls)
    assert per_callback == dict.fromkeys(ids, 1), "a customer was called twice"
    assert Counter(callback_of(centre, form) for form in fake.requests) == {
        **dict.fromkeys(ids, 1),
        **dict.fromkeys(retries, 2),
    }
    for callback_id in ids:
        after = centre.callback(callback_id)
        assert after.status is CallbackStatus.COMPLETED
        expected = 2 if callback_id in retries else 1
        assert [a.number for a in after.attempts] == list(range(1, expected + 1))


def test_twilio_failing_every_time_hands_the_callback_to_an_agent(centre: Centre) -> None:
    callback_id = centre.intake()
    max_attempts = centre.settings.rules.attempts.max_attempts
    centre.fake.faults = [Fault(status=503), Fault(status=429), Fault(status=500)]
    for tried in range(1, max_attempts + 1):
        centre.clock.set(max(centre.clock.now(), centre.callback(callback_id).available_at))
        assert centre.dial().refused == 1
        assert len(centre.fake.requests) == tried
        assert len(centre.callback(callback_id).attempts) == tried
    after = centre.callback(callback_id)
    assert after.status is CallbackStatus.PENDING and after.channel.value == "agent"
    assert centre.fake.calls == []
    centre.clock.advance(timedelta(days=1))
    assert centre.dial().planned == 0  # the IVR is done with it
