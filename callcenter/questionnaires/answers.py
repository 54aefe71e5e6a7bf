"""Check a set of answers against a script, without a database.

An answer set maps question ids to values as the agent's form or the IVR sends them:
- yes/no: `true` / `false`;
- rating: a whole number 1..5;
- count: a whole number, 0 or more;
- choice: the choice's value, or `{"choice": value, "text": "..."}`; the `other` choice needs
  the text, no other choice takes any;
- text: a non-empty string.
A missing key or `None` means "not answered".

A question is asked when it has no condition, or when the question its condition names was
asked and its answer matches. An answer to a question that was not asked is an error, like a
missing answer to a required one that was. On an IVR call the questions that agents only ask
are not asked. When the answer a condition depends on is itself invalid, whether the question
was asked is unknown, and only its own value is checked: one error at the root, not a cascade.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum

from callcenter.config import Channel
from callcenter.questionnaires.definitions import (
    RATING_MAX,
    RATING_MIN,
    Question,
    QuestionKind,
    Scalar,
    ScriptDefinition,
    Text,
)


class AnswerErrorCode(StrEnum):
    UNKNOWN_QUESTION = "unknown_question"
    NOT_ASKED = "not_asked"  # its condition is false, so it cannot have an answer
    AGENT_ONLY = "agent_only"  # answered on an IVR call, but only agents ask it
    MISSING = "missing"  # required, asked, not answered
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_CHOICE = "unknown_choice"
    OTHER_NEEDS_TEXT = "other_needs_text"
    TEXT_NOT_ALLOWED = "text_not_allowed"
    EMPTY_TEXT = "empty_text"


@dataclass(frozen=True)
class AnswerError:
    question_id: str
    code: AnswerErrorCode
    message: Text  # says which question and why, in zh and en
    detail: Text  # only why: for a form that shows it beside its question

    def __str__(self) -> str:
        return self.message.en


class InvalidAnswers(ValueError):
    def __init__(self, errors: tuple[AnswerError, ...]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class ChoiceAnswer:
    choice: str
    text: str | None = None  # the free text of an `other` choice


Answer = bool | int | str | ChoiceAnswer


class _Asked(Enum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"  # its condition depends on an invalid answer
    NOT_ON_CHANNEL = "not_on_channel"


_EXPECTED: dict[QuestionKind, Text] = {
    QuestionKind.YES_NO: Text(zh="是或否（true/false）", en="yes or no (true/false)"),
    QuestionKind.RATING: Text(zh="1到5的整数", en="a whole number from 1 to 5"),
    QuestionKind.COUNT: Text(zh="不小于0的整数", en="a whole number, 0 or more"),
    QuestionKind.CHOICE: Text(zh="其中一个选项", en="one of the choices"),
    QuestionKind.TEXT: Text(zh="一段文字", en="text"),
}


def _error(question_id: str, code: AnswerErrorCode, zh: str, en: str) -> AnswerError:
    message = Text(zh=f"问题“{question_id}”：{zh}", en=f"question '{question_id}': {en}")
    return AnswerError(
        question_id=question_id, code=code, message=message, detail=Text(zh=zh, en=en)
    )


def _wrong(question: Question, code: AnswerErrorCode = AnswerErrorCode.WRONG_TYPE) -> AnswerError:
    expected = _EXPECTED[question.kind]
    return _error(
        question.id, code, f"答案应为{expected.zh}。", f"the answer should be {expected.en}"
    )


def parse_answer(question: Question, value: object) -> Answer | AnswerError:
    """The answer as a typed value, or why it is not an answer to `question`."""
    kind = question.kind
    if kind is QuestionKind.YES_NO:
        return value if isinstance(value, bool) else _wrong(question)
    if kind in (QuestionKind.RATING, QuestionKind.COUNT):
        if not isinstance(value, int) or isinstance(value, bool):
            return _wrong(question)
        low, high = (RATING_MIN, RATING_MAX) if kind is QuestionKind.RATING else (0, None)
        if value < low or (high is not None and value > high):
            return _wrong(question, AnswerErrorCode.OUT_OF_RANGE)
        return value
    if kind is QuestionKind.TEXT:
        if not isinstance(value, str):
            return _wrong(question)
        if not value.strip():
            return _error(question.id, AnswerErrorCode.EMPTY_TEXT, "答案为空。", "empty answer")
        return value
    return _parse_choice(question, value)


def _parse_choice(question: Question, value: object) -> Answer | AnswerError:
    if isinstance(value, str):
        answer = ChoiceAnswer(choice=value)
    elif isinstance(value, ChoiceAnswer):
        answer = value
    elif (
        isinstance(value, Mapping)
        and set(value) <= {"choice", "text"}
        and isinstance(value.get("choice"), str)
        and isinstance(value.get("text"), str | None)
    ):
        answer = ChoiceAnswer(choice=value["choice"], text=value.get("text"))
    else:
        return _wrong(question)
    choice = question.choice(answer.choice)
    if choice is None:
        return _error(
            question.id,
            AnswerErrorCode.UNKNOWN_CHOICE,
            f"没有“{answer.choice}”这个选项。",
            f"there is no choice '{answer.choice}'",
        )
    if choice.other and (answer.text is None or not answer.text.strip()):
        return _error(
            question.id,
            AnswerErrorCode.OTHER_NEEDS_TEXT,
            "选择“其他”时，需要填写具体内容。",
            "the 'other' choice needs the details in text",
        )
    if not choice.other and answer.text is not None:
        return _error(
            question.id,
            AnswerErrorCode.TEXT_NOT_ALLOWED,
            "只有“其他”选项可以附带文字。",
            "only the 'other' choice takes text",
        )
    return answer


def _matches(answer: Answer, values: tuple[Scalar, ...]) -> bool:
    plain = answer.choice if isinstance(answer, ChoiceAnswer) else answer
    # type-exact: True is not the rating 1
    return any(type(plain) is type(value) and plain == value for value in values)


def _evaluate(
    definition: ScriptDefinition, answers: Mapping[str, object], channel: Channel
) -> tuple[dict[str, _Asked], dict[str, Answer], list[AnswerError]]:
    asked: dict[str, _Asked] = {}
    valid: dict[str, Answer] = {}
    errors: list[AnswerError] = []
    known = {q.id for q in definition.questions}
    for question_id in answers:
        if question_id not in known:
            errors.append(
                _error(
                    str(question_id),
                    AnswerErrorCode.UNKNOWN_QUESTION,
                    "问卷中没有这个问题。",
                    "the script has no such question",
                )
            )
    for question in definition.questions:
        state = _asked(question, asked, valid, answers, channel)
        asked[question.id] = state
        raw = answers.get(question.id)
        if raw is None:
            if state is _Asked.YES and question.required:
                errors.append(
                    _error(
                        question.id,
                        AnswerErrorCode.MISSING,
                        "必答题，尚未回答。",
                        "required, but not answered",
                    )
                )
            continue
        parsed = parse_answer(question, raw)
        if isinstance(parsed, AnswerError):
            errors.append(parsed)
        else:
            valid[question.id] = parsed
        if state is _Asked.NO:
            source = question.when.question if question.when is not None else ""
            errors.append(
                _error(
                    question.id,
                    AnswerErrorCode.NOT_ASKED,
                    f"根据问题“{source}”的回答，本题不应询问，不能有答案。",
                    f"not asked, given the answer to '{source}', so it cannot have an answer",
                )
            )
        elif state is _Asked.NOT_ON_CHANNEL:
            errors.append(
                _error(
                    question.id,
                    AnswerErrorCode.AGENT_ONLY,
                    "本题只由坐席询问，IVR回访不能有答案。",
                    "only agents ask this question, so an IVR call cannot answer it",
                )
            )
    return asked, valid, errors


def _asked(
    question: Question,
    asked: Mapping[str, _Asked],
    valid: Mapping[str, Answer],
    answers: Mapping[str, object],
    channel: Channel,
) -> _Asked:
    if channel is Channel.IVR and (question.agent_only or question.ivr is None):
        return _Asked.NOT_ON_CHANNEL
    condition = question.when
    if condition is None:
        return _Asked.YES
    source = asked.get(condition.question, _Asked.NO)
    if source is _Asked.UNKNOWN:
        return _Asked.UNKNOWN
    if source is not _Asked.YES:
        return _Asked.NO
    if condition.question in valid:
        return _Asked.YES if _matches(valid[condition.question], condition.values) else _Asked.NO
    if answers.get(condition.question) is not None:
        return _Asked.UNKNOWN  # answered, but not validly
    return _Asked.NO


def validate_answers(
    definition: ScriptDefinition,
    answers: Mapping[str, object],
    *,
    channel: Channel = Channel.AGENT,
) -> tuple[AnswerError, ...]:
    """Every reason the answer set is not a consistent set of answers; empty when it is."""
    return tuple(_evaluate(definition, answers, channel)[2])


def check_answers(
    definition: ScriptDefinition,
    answers: Mapping[str, object],
    *,
    channel: Channel = Channel.AGENT,
) -> dict[str, Answer]:
    """The typed answers; raise `InvalidAnswers` with every error when they are inconsistent."""
    _, valid, errors = _evaluate(definition, answers, channel)
    if errors:
        raise InvalidAnswers(tuple(errors))
    return valid


def asked_questions(
    definition: ScriptDefinition,
    answers: Mapping[str, object],
    *,
    channel: Channel = Channel.AGENT,
) -> tuple[Question, ...]:
    """The questions to ask given the answers so far (the form shows these, in order)."""
    asked, _, _ = _evaluate(definition, answers, channel)
    return tuple(q for q in definition.questions if asked[q.id] is _Asked.YES)


def is_dissatisfied(definition: ScriptDefinition, answers: Mapping[str, object]) -> bool:
    """Whether the customer said they were dissatisfied, by the script's marker (rule KPI-2).

    A script without a marker, or an answer set without a valid answer to its question, does
    not say so.
    """
    marker = definition.satisfaction
    if marker is None:
        return False
    raw = answers.get(marker.question)
    if raw is None:
        return False
    parsed = parse_answer(definition.question(marker.question), raw)
    return not isinstance(parsed, AnswerError) and _matches(parsed, marker.dissatisfied)


_WHOLE_NUMBER = re.compile(r"^[+-]?\d{1,9}$")


def answers_from_fields(
    definition: ScriptDefinition,
    fields: Mapping[str, str],
    *,
    channel: Channel = Channel.AGENT,
) -> dict[str, object]:
    """Answers as a form sends them (every value a string; an `other` choice's details in
    `<question>.text`), typed by each question's kind. Blank fields are not answers, and a
    question that is not asked given the other answers is dropped (a form whose script ran
    without JavaScript may still hold it). What cannot be typed is kept as the string, so that
    validation reports it against its question."""
    typed: dict[str, object] = {}
    for question in definition.questions:
        raw = fields.get(question.id)
        if raw is None or not raw.strip():
            continue
        value = raw.strip()
        kind = question.kind
        if kind is QuestionKind.YES_NO:
            typed[question.id] = {"true": True, "false": False}.get(value, value)
        elif kind in (QuestionKind.RATING, QuestionKind.COUNT):
            typed[question.id] = int(value) if _WHOLE_NUMBER.match(value) else value
        elif kind is QuestionKind.CHOICE:
            choice = question.choice(value)
            details = (fields.get(f"{question.id}.text") or "").strip()
            typed[question.id] = (
                {"choice": value, "text": details} if choice is not None and choice.other else value
            )
        else:
            typed[question.id] = raw.strip()
    asked = {q.id for q in asked_questions(definition, typed, channel=channel)}
    return {q: v for q, v in typed.items() if q in asked}
