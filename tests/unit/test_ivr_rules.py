"""The IVR's pure rules: dial slots, keys, the next question, outcomes, TwiML, signatures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from twilio.twiml.voice_response import VoiceResponse

from callcenter.callbacks.rules import AttemptOutcome, CallbackStatus
from callcenter.config import (
    CallbackType,
    Channel,
    Environment,
    RulesConfig,
    Settings,
    TelephonySettings,
)
from callcenter.ivr import rules
from callcenter.ivr.rules import (
    Ask,
    CallStatus,
    Disposition,
    End,
    EndReason,
    Step,
    StepResult,
    call_result,
    dial_slots,
    next_action,
    read_keys,
    settle,
)
from callcenter.questionnaires.loader import shipped_scripts
from callcenter.telephony.base import Gather, Hangup, Redirect, Say, Verb
from callcenter.telephony.signature import is_valid, sign
from callcenter.telephony.twiml import to_twiml

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
INSTALL = shipped_scripts().for_type(CallbackType.INSTALL)
COMPLAINT = shipped_scripts().for_type(CallbackType.COMPLAINT)


# -- rate limit ------------------------------------------------------------------------------


def test_one_call_per_second_by_default_and_no_saved_up_credit() -> None:
    assert dial_slots(
        next_free=T0 - timedelta(hours=1),  # idle for an hour: no burst now
        now=T0,
        horizon=timedelta(seconds=3),
        calls_per_second=1,
        room=100,
    ) == [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]


def test_slots_start_after_the_ones_already_taken_and_stop_at_the_room() -> None:
    taken_until = T0 + timedelta(seconds=0.5)
    assert dial_slots(
        next_free=taken_until, now=T0, horizon=timedelta(seconds=1), calls_per_second=1, room=5
    ) == [taken_until]
    assert dial_slots(
        next_free=T0, now=T0, horizon=timedelta(seconds=10), calls_per_second=1, room=2
    ) == [T0, T0 + timedelta(seconds=1)]
    assert dial_slots(next_free=T0, now=T0, horizon=timedelta(1), calls_per_second=1, room=0) == []


@given(
    cps=st.sampled_from([1, 2, 3, 7, 0.5]),
    offset_us=st.integers(min_value=0, max_value=10_000_000),
)
def test_no_second_ever_holds_more_calls_than_the_limit(cps: float, offset_us: int) -> None:
    slots = dial_slots(
        next_free=T0 + timedelta(microseconds=offset_us),
        now=T0,
        horizon=timedelta(seconds=30),
        calls_per_second=cps,
        room=10_000,
    )
    limit = max(1, int(cps))
    for i, start in enumerate(slots):
        within = [s for s in slots[i:] if s < start + timedelta(seconds=1)]
        assert len(within) <= limit


# -- keys --------------------------------------------------------------------------------------


def test_keys_map_to_answers_zero_to_an_agent_star_to_a_repeat() -> None:
    working = INSTALL.question("working")
    overall = INSTALL.question("overall")
    assert read_keys(working, "1") == rules.KeyReading(StepResult.ANSWERED, True)
    assert read_keys(working, "2") == rules.KeyReading(StepResult.ANSWERED, False)
    assert read_keys(overall, "4").value == 4
    assert read_keys(working, "9").result is StepResult.INVALID
    assert read_keys(working, "0").result is StepResult.AGENT
    assert read_keys(working, "*").result is StepResult.REPEAT
    assert read_keys(working, "").result is StepResult.NO_INPUT
    assert read_keys(working, None).result is StepResult.NO_INPUT


def test_a_count_takes_digits_up_to_its_length_and_zero_is_a_number() -> None:
    count = COMPLAINT.question("earlier_complaints")
    assert read_keys(count, "12#").value == 12
    assert read_keys(count, "0").value == 0
    assert read_keys(count, "123").result is StepResult.INVALID
    assert read_keys(count, "#").result is StepResult.NO_INPUT


# -- the survey ----------------------------------------------------------------------------


def test_the_ivr_asks_its_questions_in_order_skipping_agent_only_ones() -> None:
    answers: dict[str, object] = {}
    asked = []
    while isinstance(action := next_action(INSTALL, answers, []), Ask):
        asked.append(action.question.id)
        answers[action.question.id] = False if action.question.kind.value == "yes_no" else 2
    # working=false and overall=2 make agent-only questions due: the IVR skips them.
    assert asked == ["working", "appointment_kept", "conduct_standard", "overall"]
    assert action == End(EndReason.FINISHED)
    assert not rules.survey_complete(COMPLAINT, {"satisfied": False})


def test_a_question_is_asked_again_once_then_left() -> None:
    first = next_action(INSTALL, {}, [])
    assert isinstance(first, Ask) and (first.try_number, first.hint) == (1, None)
    once = [Step("working", 1, StepResult.NO_INPUT)]
    again = next_action(INSTALL, {}, once)
    assert isinstance(again, Ask) and again.question.id == "working"
    assert (again.try_number, again.hint) == (2, StepResult.NO_INPUT)
    twice = [*once, Step("working", 2, StepResult.INVALID)]
    moved = next_action(INSTALL, {}, twice)
    assert isinstance(moved, Ask) and moved.question.id == "appointment_kept"
    repeat = next_action(INSTALL, {}, [Step("working", 1, StepResult.REPEAT)])
    assert isinstance(repeat, Ask) and repeat.hint is StepResult.REPEAT


def test_key_zero_ends_the_survey() -> None:
    steps = [Step("working", 1, StepResult.AGENT)]
    assert next_action(INSTALL, {}, steps) == End(EndReason.AGENT_REQUESTED)


# -- outcomes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "answered_by", "outcome"),
    [
        (CallStatus.COMPLETED, "human", AttemptOutcome.ANSWERED),
        (CallStatus.COMPLETED, "unknown", AttemptOutcome.ANSWERED),
        (CallStatus.COMPLETED, None, AttemptOutcome.ANSWERED),
        (CallStatus.COMPLETED, "machine_start", AttemptOutcome.NO_ANSWER),
        (CallStatus.COMPLETED, "fax", AttemptOutcome.NO_ANSWER),
        (CallStatus.BUSY, None, AttemptOutcome.BUSY),
        (CallStatus.NO_ANSWER, None, AttemptOutcome.NO_ANSWER),
        (CallStatus.FAILED, None, AttemptOutcome.NO_ANSWER),
        (CallStatus.CANCELED, None, AttemptOutcome.NO_ANSWER),
        (CallStatus.LOST, None, AttemptOutcome.NO_ANSWER),
    ],
)
def test_provider_statuses_map_onto_the_agents_outcomes(
    status: CallStatus, answered_by: str | None, outcome: AttemptOutcome
) -> None:
    assert call_result(status, answered_by, end=None, answered=0).outcome is outcome


def test_statuses_only_move_forward() -> None:
    assert rules.provider_status("in-progress") is CallStatus.IN_PROGRESS
    assert rules.provider_status("no-answer") is CallStatus.NO_ANSWER
    assert rules.provider_status("bogus") is None
    assert rules.advances(CallStatus.QUEUED, CallStatus.RINGING)
    assert not rules.advances(CallStatus.IN_PROGRESS, CallStatus.RINGING)
    assert rules.advances(CallStatus.RINGING, CallStatus.BUSY)
    assert not rules.advances(CallStatus.COMPLETED, CallStatus.COMPLETED)


def _settle(outcome: AttemptOutcome, **kwargs: object) -> rules.Settlement:
    options: dict[str, object] = {
        "complete": False,
        "now": T0,
        "unreached_so_far": 0,
        "hard_due_at": T0 + timedelta(days=2),
        "zone": SHANGHAI,
        "rules": RulesConfig(),
        **kwargs,
    }
    return settle(outcome, **options)  # type: ignore[arg-type]


def test_what_a_call_does_to_its_callback() -> None:
    done = _settle(AttemptOutcome.ANSWERED, complete=True)
    assert (done.disposition, done.status) == (Disposition.COMPLETED, CallbackStatus.COMPLETED)
    partial = _settle(AttemptOutcome.ANSWERED)
    assert (partial.disposition, partial.channel, partial.available_at) == (
        Disposition.TO_AGENT,
        Channel.AGENT,
        T0,
    )
    retry = _settle(AttemptOutcome.BUSY)
    assert retry.disposition is Disposition.RETRY and retry.channel is Channel.IVR
    assert retry.available_at is not None and retry.available_at >= T0 + timedelta(hours=2)
    last = _settle(AttemptOutcome.NO_ANSWER, unreached_so_far=2)
    assert (last.disposition, last.status, last.channel) == (
        Disposition.TO_AGENT,
        CallbackStatus.PENDING,
        Channel.AGENT,
    )
    shorter = _settle(AttemptOutcome.NO_ANSWER, unreached_so_far=1, ivr_max_attempts=2)
    assert shorter.disposition is Disposition.TO_AGENT
    late = _settle(AttemptOutcome.BUSY, hard_due_at=T0 + timedelta(hours=1))
    assert late.disposition is Disposition.EXPIRED and late.status is CallbackStatus.EXPIRED


# -- TwiML, signatures, settings -------------------------------------------------------------


def test_twiml_says_in_the_configured_voice_and_gathers_keys() -> None:
    xml = to_twiml(
        [
            Say("您好"),
            Gather(("请按1",), "https://x/g?q=a&t=1", 1, None, 6),
            Redirect("https://x/g?q=a&t=1"),
            Hangup(),
        ],
        voice="Polly.Zhiyu",
        language="zh-CN",
    )
    assert '<Say language="zh-CN" voice="Polly.Zhiyu">您好</Say>' in xml
    assert 'numDigits="1"' in xml and 'action="https://x/g?q=a&amp;t=1"' in xml
    assert "<Redirect" in xml and xml.endswith("<Hangup /></Response>")


def _library_twiml(verbs: list[Verb], *, voice: str, language: str) -> str:
    """The same verbs through the Twilio library's own writer."""
    response = VoiceResponse()
    for verb in verbs:
        if isinstance(verb, Say):
            response.say(verb.text, voice=voice, language=language)
        elif isinstance(verb, Gather):
            options: dict[str, object] = {
                "input": "dtmf",
                "action": verb.action,
                "method": "POST",
                "timeout": verb.timeout_seconds,
            }
            if verb.num_digits is not None:
                options["num_digits"] = verb.num_digits
            if verb.finish_on_key is not None:
                options["finish_on_key"] = verb.finish_on_key
            gather = response.gather(**options)
            for text in verb.texts:
                gather.say(text, voice=voice, language=language)
        elif isinstance(verb, Redirect):
            response.redirect(verb.url, method="POST")
        else:
            response.hangup()
    return str(response)


_SPOKEN = st.text(alphabet=st.sampled_from(list("ab 1王芳，。&<>\"'\r\n\t#*?=;")), max_size=12)
_VERBS = st.lists(
    st.one_of(
        st.builds(Say, _SPOKEN),
        st.builds(
            Gather,
            st.lists(_SPOKEN, max_size=3).map(tuple),
            _SPOKEN,
            st.sampled_from([None, 1]),
            st.sampled_from([None, "#"]),
            st.integers(1, 60),
        ),
        st.builds(Redirect, _SPOKEN),
        st.just(Hangup()),
    ),
    max_size=5,
)


@given(_VERBS, st.sampled_from(["zh-CN", "en-US"]))
def test_twiml_is_written_as_the_twilio_library_writes_it(verbs: list[Verb], language: str) -> None:
    expected = _library_twiml(verbs, voice="Polly.Zhiyu", language=language)
    assert to_twiml(verbs, voice="Polly.Zhiyu", language=language) == expected


def test_signatures_cover_the_url_and_every_field() -> None:
    form = {"CallSid": "CA1", "Digits": "1"}
    signature = sign("key", "https://cc.example.com/twilio/ivr/r/gather?q=a&t=1", form)
    assert is_valid("key", "https://cc.example.com/twilio/ivr/r/gather?q=a&t=1", form, signature)
    assert not is_valid(
        "key", "https://cc.example.com/twilio/ivr/r/gather?q=a&t=2", form, signature
    )
    assert not is_valid(
        "key",
        "https://cc.example.com/twilio/ivr/r/gather?q=a&t=1",
        {**form, "Digits": "2"},
        signature,
    )
    assert not is_valid(
        "other", "https://cc.example.com/twilio/ivr/r/gather?q=a&t=1", form, signature
    )
    assert not is_valid("key", "https://x", form, None)
    # Twilio may sign the URL without its port: still the same URL.
    unported = sign("key", "https://cc.example.com/twilio/ivr/r/status", form)
    assert is_valid("key", "https://cc.example.com:443/twilio/ivr/r/status", form, unported)
    assert not is_valid("key", "https://cc.example.com:443/twilio/ivr/r/voice", form, unported)


def test_telephony_settings_take_a_whole_account_or_none() -> None:
    assert TelephonySettings().provider.value == "simulator"
    with pytest.raises(ValidationError, match="missing: auth_token, from_number"):
        TelephonySettings(account_sid="AC1")
    twilio = TelephonySettings(account_sid="AC1", auth_token="s3cr3t", from_number="+865910000")
    assert twilio.provider.value == "twilio" and twilio.signing_key() == "s3cr3t"
    assert "s3cr3t" not in repr(twilio)


def test_production_never_simulates_ivr_calls() -> None:
    ivr = RulesConfig.model_validate({"types": {"install": {"channel": "ivr"}}})
    url = "postgresql+psycopg://callcenter:Vq7-kd93_xLm@db:5432/callcenter"
    with pytest.raises(ValidationError, match="never uses the call simulator"):
        Settings(environment=Environment.PRODUCTION, rules=ivr, database_url=url)
    Settings(environment=Environment.PRODUCTION, database_url=url)  # no IVR types: fine
    with pytest.raises(ValidationError, match="churn callbacks are always made by an agent"):
        RulesConfig.model_validate({"types": {"churn": {"channel": "ivr"}}})
