"""IVR calls end to end: the dialer job places calls with the real `twilio` client against a
local fake of Twilio's REST API, and the call simulator plays Twilio's part against our
webhooks (signed TwiML requests, keys, status callbacks). SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import col

from api.app import create_app
from callcenter.callbacks.rules import AttemptOutcome, CallbackStatus
from callcenter.callbacks.schemas import CallbackDetail
from callcenter.callbacks.service import claim_next, get_callback, ingest_events
from callcenter.clock import FixedClock
from callcenter.config import Channel, Settings
from callcenter.customers.models import DoNotCallSource
from callcenter.customers.service import put_on_list
from callcenter.db import Database
from callcenter.ivr.models import IvrCall
from callcenter.ivr.rules import CallStatus, Disposition, StepResult
from callcenter.ivr.schemas import DialReport, IvrCallRead
from callcenter.ivr.service import list_ivr_calls, plan_dials, settle_unconfirmed
from callcenter.questionnaires.service import list_answers
from callcenter.telephony import telephony_for
from callcenter.telephony.simulator import HANG_UP, NO_INPUT, CallPlayer, Keys, Transcript
from callcenter.users.models import UserRole
from callcenter.users.service import create_user
from callcenter.windows.rules import is_open
from scheduler import jobs
from tests.factories import event
from tests.ivr_support import (
    AUTH_TOKEN,
    INVALID_NUMBER,
    AppTransport,
    FakeTwilio,
    SimulatedSleep,
    fake_twilio,
    twilio_settings,
)


class Centre:
    """The centre with IVR callbacks, its dialer, Twilio (faked) and the customers' phones."""

    def __init__(
        self,
        database: Database,
        clock: FixedClock,
        settings: Settings,
        fake: FakeTwilio,
        client: TestClient,
    ) -> None:
        self.database = database
        self.clock = clock
        self.settings = settings
        self.fake = fake
        self.client = client
        self.telephony = telephony_for(settings.telephony)
        self.played = 0

    def intake(self, type_: str = "install_completed", **kwargs: Any) -> int:
        result = ingest_events(
            self.database.uow(),
            events=[event(type_, occurred_at=self.clock.now() - timedelta(hours=1), **kwargs)],
            now=self.clock.now(),
            config=self.settings.rules,
        )
        callback = result.results[0].callback
        assert callback is not None and callback.channel is Channel.IVR
        return callback.id

    def dial(self) -> DialReport:
        return jobs.ivr_dial(
            self.database,
            self.clock,
            self.settings,
            self.telephony,
            sleep=SimulatedSleep(self.clock),
        )

    def player(self, *, send_twice: bool = False) -> CallPlayer:
        return CallPlayer(AppTransport(self.client), AUTH_TOKEN, send_twice=send_twice)

    def answer(
        self, keys: list[str], *, answered_by: str = "human", send_twice: bool = False
    ) -> Transcript:
        """The customer of the next placed call picks up and presses `keys`."""
        call = self.fake.calls[self.played]
        self.played += 1
        return self.player(send_twice=send_twice).play(
            call.sid, call.request(), Keys(keys), answered_by=answered_by
        )

    def ring_out(self, status: str) -> Transcript:
        call = self.fake.calls[self.played]
        self.played += 1
        return self.player().unanswered(call.sid, call.request(), status)

    def callback(self, callback_id: int) -> CallbackDetail:
        return get_callback(self.database.uow(), callback_id=callback_id, now=self.clock.now())

    def calls(self, callback_id: int) -> list[IvrCallRead]:
        return list_ivr_calls(self.database.uow(), callback_id=callback_id)


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with fake_twilio() as fake:
        yield fake


@pytest.fixture
def centre(database: Database, clock: FixedClock, twilio: FakeTwilio) -> Iterator[Centre]:
    settings = twilio_settings(database.url, twilio.url)
    app = create_app(settings, database=database, clock=clock, start_scheduler=False)
    with TestClient(app) as client:
        yield Centre(database, clock, settings, twilio, client)


def test_a_full_survey_is_answered_by_keypad_and_closes_the_callback(centre: Centre) -> None:
    callback_id = centre.intake()
    report = centre.dial()
    assert (report.planned, report.placed) == (1, 1)
    placed = centre.fake.calls[0]
    # The request Twilio got: the customer's number, our webhooks, status events, AMD.
    assert placed.field("From") == "+865918000000"
    assert placed.field("Url").endswith("/voice")
    assert placed.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert placed.field("MachineDetection") == "Enable"

    transcript = centre.answer(["1", "1", "1", "5"])

    said = transcript.said()
    assert said[0].startswith("王芳") and "10050" in said[0]  # the IVR opening (rule SV-1)
    assert any("按1" in text for text in said)
    assert said[-1] == "再见！" and transcript.lines[-1] == "HANGUP"
    after = centre.callback(callback_id)
    assert after.status is CallbackStatus.COMPLETED
    assert [(a.outcome, a.channel, a.agent) for a in after.attempts] == [
        (AttemptOutcome.ANSWERED, Channel.IVR, None)
    ]
    answers = {
        a.question_id: (a.value, a.channel)
        for a in list_answers(centre.database.uow(), callback_id=callback_id)
    }
    assert answers == {
        "working": (True, Channel.IVR),
        "appointment_kept": (True, Channel.IVR),
        "conduct_standard": (True, Channel.IVR),
        "overall": (5, Channel.IVR),
    }
    (call,) = centre.calls(callback_id)
    assert call.status is CallStatus.COMPLETED and call.disposition is Disposition.COMPLETED
    assert [s.result for s in call.steps] == [StepResult.ANSWERED] * 4


def test_repeated_gathers_and_status_callbacks_change_nothing(centre: Centre) -> None:
    callback_id = centre.intake()
    centre.dial()
    transcript = centre.answer(["1", "1", "1", "4"], send_twice=True)
    assert not [line for line in transcript.lines if line.startswith("NOTE")]
    after = centre.callback(callback_id)
    assert after.status is CallbackStatus.COMPLETED and len(after.attempts) == 1
    assert len(list_answers(centre.database.uow(), callback_id=callback_id)) == 4
    assert len(centre.calls(callback_id)[0].steps) == 4


def test_no_input_asks_again_once_with_a_hint_then_moves_on(centre: Centre) -> None:
    callback_id = centre.intake()
    centre.dial()
    transcript = centre.answer([NO_INPUT, NO_INPUT, "9", "1", "1", "5"])
    said = transcript.said()
    assert "抱歉，没有收到您的按键。" in said
    assert "如需人工服务，请按0。" in said
    assert "抱歉，您按的键不在选项之中。" in said
    (call,) = centre.calls(callback_id)
    assert [(s.question_id, s.try_number, s.result) for s in call.steps] == [
        ("working", 1, StepResult.NO_INPUT),
        ("working", 2, StepResult.NO_INPUT),  # moved on
        ("appointment_kept", 1, StepResult.INVALID),
        ("appointment_kept", 2, StepResult.ANSWERED),
        ("conduct_standard", 1, StepResult.ANSWERED),
        ("overall", 1, StepResult.ANSWERED),
    ]
    # "working" is required and was never keyed: an agent asks it.
    after = centre.callback(callback_id)
    assert after.status is CallbackStatus.PENDING and after.channel is Channel.AGENT
    assert call.disposition is Disposition.TO_AGENT
    assert "稍后将由客服代表与您联系" in " ".join(said)


def test_a_hang_up_midway_keeps_the_answers_and_an_agent_does_the_rest(centre: Centre) -> None:
    callback_id = centre.intake()
    centre.dial()
    transcript = centre.answer(["1", "2", HANG_UP])
    assert transcript.hung_up_by_customer
    answers = {
        a.question_id: a.value for a in list_answers(centre.database.uow(), callback_id=callback_id)
    }
    assert answers == {"working": True, "appointment_kept": False}
    after = centre.callback(callback_id)
    assert after.status is CallbackStatus.PENDING and after.channel is Channel.AGENT
    assert after.attempts[0].outcome is AttemptOutcome.ANSWERED
    assert "hung up" in (after.attempts[0].note or "")
    # An agent now gets it, with the answers given so far.
    agent = create_user(
        centre.database.uow(), username="a1", role=UserRole.AGENT, now=centre.clock.now()
    )
    claim = claim_next(
        centre.database.uow(), agent=agent, now=centre.clock.now(), config=centre.settings.rules
    )
    assert claim is not None and claim.callback.id == callback_id


def test_key_zero_ends_the_survey_and_hands_it_to_an_agent(centre: Centre) -> None:
    callback_id = centre.intake()
    centre.dial()
    transcript = centre.answer(["1", "0"])
    assert "好的，稍后将由客服代表与您联系。" in transcript.said()
    after = centre.callback(callback_id)
    assert after.channel is Channel.AGENT and after.status is CallbackStatus.PENDING
    assert "pressed 0" in (after.attempts[0].note or "")
    assert len(list_answers(centre.database.uow(), callback_id=callback_id)) == 1


def test_a_required_question_only_agents_ask_goes_to_an_agent(centre: Centre) -> None:
    # Q-COMPLAINT: "not satisfied" makes the (agent-only, required) reason due.
    callback_id = centre.intake("complaint_replied")
    centre.dial()
    centre.answer(["2", "3#", "1"])
    answers = {
        a.question_id: a.value for a in list_answers(centre.database.uow(), callback_id=callback_id)
    }
    assert answers == {"satisfied": False, "earlier_complaints": 3, "timely": True}
    after = centre.callback(callback_id)
    assert after.channel is Channel.AGENT and after.status is CallbackStatus.PENDING


def test_a_busy_line_is_tried_again_in_a_later_window(centre: Centre) -> None:
    callback_id = centre.intake()
    centre.dial()
    centre.ring_out("busy")
    after = centre.callback(callback_id)
    assert after.status is CallbackStatus.PENDING and after.channel is Channel.IVR
    assert after.attempts[0].outcome is AttemptOutcome.BUSY
    retry_at = after.available_at
    # rule CB-5: after the retry interval, in a later window than the one it was tried in.
    assert retry_at >= centre.clock.now() + centre.settings.rules.attempts.retry_interval
    assert is_open(retry_at, ZoneInfo("Asia/Shanghai"), centre.settings.rules.windows)
    centre.clock.advance(timedelta(minutes=30))
    assert centre.dial().planned == 0  # not before its time
    centre.clock.set(retry_at)
    assert centre.dial().placed == 1
    centre.answer(["1", "1", "1", "5"])
    after = centre.callback(callback_id)
    assert after.status is CallbackStatus.COMPLETED
    assert [a.number for a in after.attempts] == [1, 2]


def test_after_the_ivr_last_attempt_an_agent_takes_over(centre: Centre) -> None:
    callback_id = centre.intake()
    for status in ("no-answer", "busy", "no-answer"):
        centre.clock.set(max(centre.clock.now(), centre.callback(callback_id).available_at))
        assert centre.dial().placed == 1
        centre.ring_out(status)
    after = centre.callback(callback_id)
    assert after.status is CallbackStatus.PENDING and after.channel is Channel.AGENT
    assert [a.outcome for a in after.attempts] == [
        AttemptOutcome.NO_ANSWER,
        AttemptOutcome.BUSY,
        AttemptOutcome.NO_ANSWER,
    ]
    assert centre.calls(callback_id)[0].disposition is Disposition.TO_AGENT


def test_an_answering_machine_is_hung_up_on_and_counts_as_not_reached(centre: Centre) -> None:
    callback_id = centre.intake()
    centre.dial()
    transcript = centre.answer(["1"], answered_by="machine_end_beep")
    assert transcript.said() == [] and "HANGUP" in transcript.lines
    after = centre.callback(callback_id)
    assert after.attempts[0].outcome is AttemptOutcome.NO_ANSWER
    assert "answering machine" in (after.attempts[0].note or "")
    assert after.status is CallbackStatus.PENDING and after.channel is Channel.IVR
    assert after.available_at > centre.clock.now()


def test_do_not_call_is_checked_when_dialling(centre: Centre) -> None:
    callback_id = centre.intake(phone="13900001111")
    with centre.database.uow() as uow:
        put_on_list(
            uow.session,
            [
                {
                    "phone": "+8613900001111",
                    "source": DoNotCallSource.CUSTOMER_REQUEST,
                    "reason": None,
                    "created_at": centre.clock.now(),
                    "created_by_id": None,
                }
            ],
        )
        uow.commit()
    assert centre.dial().planned == 0
    assert centre.fake.calls == []
    assert centre.callback(callback_id).status is CallbackStatus.PENDING


def test_nothing_is_dialled_outside_the_calling_window(centre: Centre) -> None:
    centre.intake()
    centre.clock.advance(timedelta(hours=3))  # 13:00 in Shanghai: between the windows
    assert centre.dial().planned == 0 and centre.fake.calls == []


def test_a_number_twilio_refuses_is_an_unreached_attempt(centre: Centre) -> None:
    callback_id = centre.intake(phone=INVALID_NUMBER)
    report = centre.dial()
    assert (report.planned, report.placed, report.refused) == (1, 0, 1)
    assert centre.fake.rejected and centre.fake.calls == []
    after = centre.callback(callback_id)
    assert after.attempts[0].outcome is AttemptOutcome.NO_ANSWER
    assert "not placed" in (after.attempts[0].note or "")


def test_a_crash_between_writing_the_call_and_placing_it_never_calls_twice(
    centre: Centre,
) -> None:
    callback_id = centre.intake()
    # The dialer writes the call, then "crashes" before asking Twilio.
    planned = plan_dials(
        centre.database.uow(),
        now=centre.clock.now(),
        config=centre.settings.rules,
        telephony=centre.settings.telephony,
        provider="twilio",
        horizon=timedelta(seconds=1),
    )
    assert len(planned) == 1
    for _ in range(3):  # a restarted dialer: the customer has a call in flight
        centre.clock.advance(timedelta(seconds=5))
        assert centre.dial().planned == 0
    assert centre.fake.calls == []
    centre.clock.advance(centre.settings.telephony.confirm_within)
    report = centre.dial()
    assert report.settled == 1 and report.planned == 0  # settled, not redialled now
    after = centre.callback(callback_id)
    assert [a.outcome for a in after.attempts] == [AttemptOutcome.NO_ANSWER]
    assert "never confirmed" in (after.attempts[0].note or "")
    assert after.status is CallbackStatus.PENDING and after.available_at > centre.clock.now()
    (call,) = centre.calls(callback_id)
    assert call.status is CallStatus.LOST


def test_a_call_whose_end_never_came_is_settled_from_twilio(centre: Centre) -> None:
    callback_id = centre.intake()
    centre.dial()
    placed = centre.fake.calls[0]
    placed.status, placed.duration = "no-answer", "0"
    centre.clock.advance(timedelta(hours=1))
    count = settle_unconfirmed(
        centre.database.uow(),
        telephony=centre.telephony,
        now=centre.clock.now(),
        config=centre.settings.rules,
        settings=centre.settings.telephony,
    )
    assert count == 1
    assert centre.callback(callback_id).attempts[0].outcome is AttemptOutcome.NO_ANSWER


def test_the_rate_limit_and_concurrency_hold_across_dialers(
    database: Database, clock: FixedClock, twilio: FakeTwilio
) -> None:
    settings = twilio_settings(database.url, twilio.url, calls_per_second=2, max_concurrent=3)
    app = create_app(settings, database=database, clock=clock, start_scheduler=False)
    with TestClient(app) as client:
        centre = Centre(database, clock, settings, twilio, client)
        for _ in range(6):
            centre.intake()
        one = plan_dials(
            database.uow(),
            now=clock.now(),
            config=settings.rules,
            telephony=settings.telephony,
            provider="twilio",
            horizon=timedelta(seconds=1),
        )
        # A second replica at the same instant: the slots of this second are taken.
        two = plan_dials(
            database.uow(),
            now=clock.now(),
            config=settings.rules,
            telephony=settings.telephony,
            provider="twilio",
            horizon=timedelta(seconds=1),
        )
        assert [p.dial_at - clock.now() for p in one] == [timedelta(0), timedelta(seconds=0.5)]
        assert two == []
        clock.advance(timedelta(seconds=1))
        three = plan_dials(
            database.uow(),
            now=clock.now(),
            config=settings.rules,
            telephony=settings.telephony,
            provider="twilio",
            horizon=timedelta(seconds=1),
        )
        assert len(three) == 1  # three calls in flight: the concurrency limit
        with database.uow() as uow:
            active = uow.session.execute(
                sa.select(sa.func.count()).where(col(IvrCall.status) == CallStatus.QUEUED)
            ).scalar_one()
        assert active == 3
