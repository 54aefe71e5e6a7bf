"""Answer validation: examples, and properties over random answer sets for every shipped script.

The property tests compare `validate_answers` with an oracle written here from the rules in
plain words: validation must flag exactly the questions the oracle flags, so it accepts
exactly the answer sets that are consistent with kinds, ranges, required questions and
conditions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.config import CallbackType, Channel
from callcenter.questionnaires.answers import (
    AnswerErrorCode,
    ChoiceAnswer,
    InvalidAnswers,
    asked_questions,
    check_answers,
    is_dissatisfied,
    validate_answers,
)
from callcenter.questionnaires.definitions import Question, QuestionKind, ScriptDefinition
from callcenter.questionnaires.loader import shipped_scripts

# Reproducible and fast; no example database, so nothing is written outside tests/.
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

SCRIPTS = shipped_scripts()
CASES = [(kind, channel) for kind in CallbackType for channel in Channel]


def script(kind: CallbackType) -> ScriptDefinition:
    return SCRIPTS.for_type(kind)


def codes(definition: ScriptDefinition, answers: Mapping[str, Any], **kw: Any) -> set[tuple]:
    return {(e.question_id, e.code) for e in validate_answers(definition, answers, **kw)}


# -- examples ----------------------------------------------------------------------------------

GOOD_INSTALL = {
    "working": True,
    "appointment_kept": True,
    "conduct_standard": True,
    "overall": 4,
}


def test_a_consistent_install_answer_set_is_accepted() -> None:
    definition = script(CallbackType.INSTALL)
    assert validate_answers(definition, GOOD_INSTALL) == ()
    typed = check_answers(definition, {**GOOD_INSTALL, "suggestions": "装机师傅很细心"})
    assert typed["overall"] == 4 and typed["suggestions"] == "装机师傅很细心"


def test_required_question_missing() -> None:
    definition = script(CallbackType.INSTALL)
    answers = {k: v for k, v in GOOD_INSTALL.items() if k != "overall"}
    assert codes(definition, answers) == {("overall", AnswerErrorCode.MISSING)}


def test_follow_up_must_not_be_answered_when_its_condition_is_false() -> None:
    definition = script(CallbackType.INSTALL)
    answers = {**GOOD_INSTALL, "dissatisfied_reason": "师傅迟到"}
    assert codes(definition, answers) == {("dissatisfied_reason", AnswerErrorCode.NOT_ASKED)}
    assert validate_answers(definition, {**answers, "overall": 2}) == ()


def test_required_follow_up_when_its_condition_holds() -> None:
    definition = script(CallbackType.COMPLAINT)
    base = {"satisfied": False, "earlier_complaints": 0, "timely": False}
    assert codes(definition, base) == {("dissatisfied_reason", AnswerErrorCode.MISSING)}
    assert validate_answers(definition, {**base, "dissatisfied_reason": "too_slow"}) == ()


@pytest.mark.parametrize(
    ("question", "value", "code"),
    [
        ("overall", 6, AnswerErrorCode.OUT_OF_RANGE),
        ("overall", 0, AnswerErrorCode.OUT_OF_RANGE),
        ("overall", True, AnswerErrorCode.WRONG_TYPE),  # a bool is not the rating 1
        ("overall", "4", AnswerErrorCode.WRONG_TYPE),
        ("working", 1, AnswerErrorCode.WRONG_TYPE),
        ("suggestions", "   ", AnswerErrorCode.EMPTY_TEXT),
        ("nonsense", True, AnswerErrorCode.UNKNOWN_QUESTION),
    ],
)
def test_wrong_values(question: str, value: object, code: AnswerErrorCode) -> None:
    definition = script(CallbackType.INSTALL)
    assert codes(definition, {**GOOD_INSTALL, question: value}) == {(question, code)}


def test_count_is_a_whole_number_zero_or_more() -> None:
    definition = script(CallbackType.COMPLAINT)
    base = {"satisfied": True, "timely": True}
    assert validate_answers(definition, {**base, "earlier_complaints": 0}) == ()
    assert codes(definition, {**base, "earlier_complaints": -1}) == {
        ("earlier_complaints", AnswerErrorCode.OUT_OF_RANGE)
    }
    assert codes(definition, {**base, "earlier_complaints": 1.0}) == {
        ("earlier_complaints", AnswerErrorCode.WRONG_TYPE)
    }


def test_choice_other_needs_text_and_only_other_takes_text() -> None:
    definition = script(CallbackType.CHURN)
    base = {"retained": True}
    other = {"choice": "other", "text": "家里老人去养老院了"}
    assert validate_answers(definition, {**base, "reason": other}) == ()
    assert check_answers(definition, {**base, "reason": other})["reason"] == ChoiceAnswer(
        choice="other", text="家里老人去养老院了"
    )
    assert codes(definition, {**base, "reason": "other"}) == {
        ("reason", AnswerErrorCode.OTHER_NEEDS_TEXT)
    }
    assert codes(definition, {**base, "reason": {"choice": "other", "text": " "}}) == {
        ("reason", AnswerErrorCode.OTHER_NEEDS_TEXT)
    }
    assert codes(definition, {**base, "reason": {"choice": "price", "text": "x"}}) == {
        ("reason", AnswerErrorCode.TEXT_NOT_ALLOWED)
    }
    assert codes(definition, {**base, "reason": "cheaper"}) == {
        ("reason", AnswerErrorCode.UNKNOWN_CHOICE)
    }


def test_conditions_chain_and_an_invalid_root_does_not_cascade() -> None:
    definition = script(CallbackType.CHURN)
    lost = {"reason": "moving", "retained": False, "reinstall": "later", "reinstall_when": "明年"}
    assert validate_answers(definition, lost) == ()
    # retained: true hides reinstall, which hides reinstall_when
    assert codes(definition, {**lost, "retained": True}) == {
        ("reinstall", AnswerErrorCode.NOT_ASKED),
        ("reinstall_when", AnswerErrorCode.NOT_ASKED),
    }
    # an invalid answer at the root: one error there, the dependants are not judged
    assert codes(definition, {**lost, "retained": "no"}) == {
        ("retained", AnswerErrorCode.WRONG_TYPE)
    }


def test_ivr_channel_does_not_ask_agent_only_questions() -> None:
    definition = script(CallbackType.COMPLAINT)
    ivr = {"satisfied": False, "earlier_complaints": 3, "timely": False}
    # the agent-only follow-up is required on an agent call, not asked on the IVR
    assert validate_answers(definition, ivr, channel=Channel.IVR) == ()
    assert codes(definition, ivr) == {("dissatisfied_reason", AnswerErrorCode.MISSING)}
    assert codes(definition, {**ivr, "opinions": "没有"}, channel=Channel.IVR) == {
        ("opinions", AnswerErrorCode.AGENT_ONLY)
    }


def test_errors_name_the_question_and_say_why_in_both_languages() -> None:
    definition = script(CallbackType.INSTALL)
    with pytest.raises(InvalidAnswers) as caught:
        check_answers(definition, {**GOOD_INSTALL, "overall": 9})
    [error] = caught.value.errors
    assert error.question_id == "overall"
    assert "overall" in error.message.zh and "1到5" in error.message.zh
    assert "overall" in error.message.en and "1 to 5" in error.message.en
    assert "overall" in str(caught.value)


def test_asked_questions_follow_the_answers_so_far() -> None:
    definition = script(CallbackType.REPAIR)
    asked = [q.id for q in asked_questions(definition, {"working": True, "home_visit": False})]
    assert asked == ["working", "home_visit", "overall", "suggestions"]
    asked_ivr = asked_questions(definition, {"home_visit": True}, channel=Channel.IVR)
    assert [q.id for q in asked_ivr] == [
        "working",
        "home_visit",
        "appointment_kept",
        "conduct_standard",
        "overall",
    ]


def test_is_dissatisfied_reads_the_marker() -> None:
    install = script(CallbackType.INSTALL)
    assert is_dissatisfied(install, {**GOOD_INSTALL, "overall": 2})
    assert is_dissatisfied(install, {**GOOD_INSTALL, "overall": 1})
    assert not is_dissatisfied(install, {**GOOD_INSTALL, "overall": 3})
    assert not is_dissatisfied(install, {"working": False})  # did not say so
    assert not is_dissatisfied(install, {"overall": True})  # not a rating
    complaint = script(CallbackType.COMPLAINT)
    assert is_dissatisfied(complaint, {"satisfied": False})
    assert not is_dissatisfied(complaint, {"satisfied": True})
    assert not is_dissatisfied(script(CallbackType.CHURN), {"reason": "service"})


# -- the oracle ----------------------------------------------------------------------------------


def oracle_value_ok(question: Question, value: object) -> bool:
    """Whether `value` is a well-formed answer to `question`, from the rules in words."""
    kind = question.kind
    if kind == QuestionKind.YES_NO:
        return value is True or value is False
    if kind == QuestionKind.RATING:
        return type(value) is int and value in {1, 2, 3, 4, 5}
    if kind == QuestionKind.COUNT:
        return type(value) is int and value >= 0
    if kind == QuestionKind.TEXT:
        return type(value) is str and value.strip() != ""
    # choice: a known value, or {"choice": value, "text": ...}; "other" needs text, others none
    if type(value) is str:
        picked, text = value, None
    elif isinstance(value, dict) and "choice" in value and set(value) <= {"choice", "text"}:
        picked, text = value["choice"], value.get("text")
        if type(picked) is not str or (text is not None and type(text) is not str):
            return False
    else:
        return False
    by_value = {c.value: c for c in question.choices}
    if picked not in by_value:
        return False
    if by_value[picked].other:
        return text is not None and text.strip() != ""
    return text is None


def oracle_plain(value: object) -> object:
    return value["choice"] if isinstance(value, dict) else value


def oracle_bad_questions(
    definition: ScriptDefinition, answers: Mapping[str, Any], channel: Channel
) -> set[str]:
    """The ids that a correct validation must complain about."""
    by_id = {q.id: q for q in definition.questions}
    bad = {key for key in answers if key not in by_id}
    # "asked", "not asked" or "unknown" (depends on an answer that is itself malformed)
    state: dict[str, str] = {}
    for q in definition.questions:
        value = answers.get(q.id)
        if value is not None and not oracle_value_ok(q, value):
            bad.add(q.id)
        if channel == Channel.IVR and (q.agent_only or q.ivr is None):
            state[q.id] = "not asked"
        elif q.when is None:
            state[q.id] = "asked"
        else:
            src = by_id[q.when.question]
            src_value = answers.get(src.id)
            if state[src.id] == "unknown":
                state[q.id] = "unknown"
            elif state[src.id] == "not asked" or src_value is None:
                state[q.id] = "not asked"
            elif not oracle_value_ok(src, src_value):
                state[q.id] = "unknown"
            else:
                plain = oracle_plain(src_value)
                hit = any(type(plain) is type(v) and plain == v for v in q.when.values)
                state[q.id] = "asked" if hit else "not asked"
        if state[q.id] == "not asked" and value is not None:
            bad.add(q.id)
        if state[q.id] == "asked" and q.required and value is None:
            bad.add(q.id)
    return bad


# -- strategies ------------------------------------------------------------------------------------


JUNK: list[object] = [None, 1.0, "", "true", [], {"x": 1}]


def value_pool(question: Question) -> list[object]:
    """Well-formed and malformed answers to `question`, edges included, and None."""
    kind = question.kind
    if kind == QuestionKind.YES_NO:
        return [True, False, 0, 1, "yes", *JUNK]
    if kind == QuestionKind.RATING:
        return [-1, 0, 1, 2, 3, 4, 5, 6, 7, True, 3.0, "3", *JUNK]
    if kind == QuestionKind.COUNT:
        return [-2, -1, 0, 1, 2, 99, False, 2.5, "4", *JUNK]
    if kind == QuestionKind.TEXT:
        return ["好", "no comment", " ", "\n", 3, True, *JUNK]
    values = [c.value for c in question.choices] + ["nope"]
    return [
        *values,
        *({"choice": v} for v in values),
        *({"choice": v, "text": t} for v in values for t in (None, "", " ", "原因", 7)),
        {"text": "x"},
        {"choice": values[0], "note": "x"},
        {"choice": 3},
        *JUNK,
    ]


def any_value(question: Question) -> st.SearchStrategy[object]:
    pool = st.sampled_from(value_pool(question))
    return st.one_of(pool, st.text(max_size=5)) if question.kind == QuestionKind.TEXT else pool


def good_value(question: Question) -> st.SearchStrategy[object]:
    kind = question.kind
    if kind == QuestionKind.YES_NO:
        return st.booleans()
    if kind == QuestionKind.RATING:
        return st.integers(1, 5)
    if kind == QuestionKind.COUNT:
        return st.integers(0, 99)
    if kind == QuestionKind.TEXT:
        return st.text(min_size=1, max_size=8).filter(lambda s: s.strip() != "")
    plain = [c.value for c in question.choices if not c.other]
    others = [c.value for c in question.choices if c.other]
    options: list[st.SearchStrategy[object]] = [
        st.sampled_from(plain),
        st.builds(lambda v: {"choice": v}, st.sampled_from(plain)),
    ]
    if others:
        options.append(st.builds(lambda t: {"choice": others[0], "text": t}, st.just("原因")))
    return st.one_of(options)


@st.composite
def answer_sets(draw: st.DrawFn, definition: ScriptDefinition) -> dict[str, object]:
    """Each question unanswered, well answered or answered with anything, at random."""
    answers: dict[str, object] = {}
    for question in definition.questions:
        pick = draw(st.sampled_from(["absent", "good", "any"]))
        if pick != "absent":
            strategy = good_value(question) if pick == "good" else any_value(question)
            answers[question.id] = draw(strategy)
    if draw(st.integers(0, 9)) == 0:
        answers[draw(st.sampled_from(["bogus", "q99", "Working"]))] = True
    return answers


@st.composite
def consistent_sets(
    draw: st.DrawFn, definition: ScriptDefinition, channel: Channel
) -> dict[str, object]:
    """Answer only what is asked, every required one, with well-formed values."""
    answers: dict[str, object] = {}
    asked: set[str] = set()
    for q in definition.questions:
        if channel == Channel.IVR and (q.agent_only or q.ivr is None):
            continue
        if q.when is not None:
            if q.when.question not in asked or q.when.question not in answers:
                continue
            plain = oracle_plain(answers[q.when.question])
            if not any(type(plain) is type(v) and plain == v for v in q.when.values):
                continue
        asked.add(q.id)
        if q.required or draw(st.booleans()):
            answers[q.id] = draw(good_value(q))
    return answers


# -- properties ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "channel"), CASES)
@PROPERTY
@given(data=st.data())
def test_validation_flags_exactly_what_the_oracle_flags(
    kind: CallbackType, channel: Channel, data: st.DataObject
) -> None:
    definition = script(kind)
    answers = data.draw(answer_sets(definition))
    errors = validate_answers(definition, answers, channel=channel)
    expected = oracle_bad_questions(definition, answers, channel)
    assert {e.question_id for e in errors} == expected
    assert (errors == ()) == (not expected)  # accepted iff consistent


@pytest.mark.parametrize(("kind", "channel"), CASES)
@PROPERTY
@given(data=st.data())
def test_consistent_sets_are_accepted(
    kind: CallbackType, channel: Channel, data: st.DataObject
) -> None:
    definition = script(kind)
    answers = data.draw(consistent_sets(definition, channel))
    assert oracle_bad_questions(definition, answers, channel) == set()
    assert validate_answers(definition, answers, channel=channel) == ()
    assert set(check_answers(definition, answers, channel=channel)) == set(answers)


@pytest.mark.parametrize(("kind", "channel"), CASES)
@settings(PROPERTY, max_examples=25)
@given(data=st.data())
def test_every_single_change_to_a_consistent_set_is_judged_like_the_oracle(
    kind: CallbackType, channel: Channel, data: st.DataObject
) -> None:
    # Each question of a consistent set, set in turn to every value of its pool (None drops
    # it): every edge value meets every question in every run, not only when chance has it.
    definition = script(kind)
    base = data.draw(consistent_sets(definition, channel))
    for question in definition.questions:
        for value in value_pool(question):
            answers = {**base, question.id: value}
            errors = validate_answers(definition, answers, channel=channel)
            expected = oracle_bad_questions(definition, answers, channel)
            assert {e.question_id for e in errors} == expected, (question.id, value)


@pytest.mark.parametrize("kind", list(CallbackType))
@PROPERTY
@given(data=st.data())
def test_is_dissatisfied_agrees_with_the_marker(kind: CallbackType, data: st.DataObject) -> None:
    definition = script(kind)
    answers = data.draw(consistent_sets(definition, Channel.AGENT))
    marker = definition.satisfaction
    if marker is None:
        assert not is_dissatisfied(definition, answers)
        return
    value = oracle_plain(answers[marker.question])  # required and always asked
    said = any(type(value) is type(v) and value == v for v in marker.dissatisfied)
    assert is_dissatisfied(definition, answers) == said
