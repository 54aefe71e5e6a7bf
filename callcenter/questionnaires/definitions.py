"""A call script (questionnaire) as frozen data: what `scripts/*.yaml` holds once loaded.

A definition is self-contained: the loader resolves references to the shared standard phrases
(`scripts/phrases.yaml`) into the opening and closing, so that the definition alone says every
word the agent or the IVR speaks, and its fingerprint changes whenever any of them changes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    field_validator,
)
from pydantic_core import PydanticCustomError

from callcenter.config import CallbackType


def _scalar(value: object) -> bool | int | str:
    if isinstance(value, bool | int | str):
        return value
    raise PydanticCustomError("scalar", "expected true, false, a whole number or a word")


# An answer value that a condition, an IVR key or the satisfaction marker can name.
Scalar = Annotated[bool | int | str, PlainValidator(_scalar)]

Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_JINJA_MARKUP = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)

RATING_MIN = 1
RATING_MAX = 5


class Lang(StrEnum):
    """The languages every script text carries: zh-CN first, English second."""

    ZH = "zh"
    EN = "en"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Text(_Frozen):
    """One text in both languages; a Jinja2 template when it is spoken or shown."""

    zh: str
    en: str

    @field_validator("zh")
    @classmethod
    def _chinese(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("translation", "empty Chinese text")
        if not _CJK.search(_JINJA_MARKUP.sub("", value)):
            raise PydanticCustomError("translation", "the Chinese text has no Chinese in it")
        return value

    @field_validator("en")
    @classmethod
    def _english(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("translation", "empty English translation")
        if _CJK.search(_JINJA_MARKUP.sub("", value)):
            raise PydanticCustomError(
                "translation", "the English translation contains Chinese (not translated?)"
            )
        return value

    def get(self, lang: Lang) -> str:
        return self.zh if lang is Lang.ZH else self.en


class QuestionKind(StrEnum):
    YES_NO = "yes_no"  # true / false
    RATING = "rating"  # 1..5, 5 the best
    COUNT = "count"  # a whole number >= 0
    CHOICE = "choice"  # one of `choices`; an `other` choice takes free text
    TEXT = "text"  # free text


class Condition(_Frozen):
    """Show a question only when an earlier answer `equals` a value or is `in` a list."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    question: Identifier
    equals: Scalar | None = None
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in", min_length=1)

    @property
    def values(self) -> tuple[Scalar, ...]:
        if self.in_ is not None:
            return self.in_
        return () if self.equals is None else (self.equals,)


class Choice(_Frozen):
    value: Identifier
    text: Text
    other: StrictBool = False  # choosing it requires free text


class Ivr(_Frozen):
    """How the IVR asks a question: the spoken prompt and the DTMF keys.

    `keys` maps a key to an answer (yes/no, rating, choice); a count question instead takes up
    to `max_digits` digits ended by '#'.
    """

    prompt: Text
    keys: dict[str, Scalar] | None = None
    max_digits: StrictInt | None = Field(default=None, ge=1, le=6)


class Question(_Frozen):
    id: Identifier
    kind: QuestionKind
    text: Text
    hint: Text | None = None  # shown to the agent, never spoken
    required: StrictBool = False
    when: Condition | None = None
    choices: tuple[Choice, ...] = ()
    ivr: Ivr | None = None
    agent_only: StrictBool = False

    def choice(self, value: str) -> Choice | None:
        return next((c for c in self.choices if c.value == value), None)


class Part(_Frozen):
    """One sentence of an opening or closing; `phrase` names the standard phrase it came from."""

    phrase: Identifier | None = None
    text: Text
    only_if_late: StrictBool = False  # rule SV-1: the apology is said only when the call is late


class Satisfaction(_Frozen):
    """Which answers of which question mean "dissatisfied" (feeds rule KPI-2)."""

    question: Identifier
    dissatisfied: tuple[Scalar, ...] = Field(min_length=1)


class ScriptDefinition(_Frozen):
    """One call script. `id` and `type` stay the same across versions; the database numbers
    the versions, a new one whenever the content (its fingerprint) changes."""

    id: Identifier
    type: CallbackType
    title: Text
    purpose: Text
    opening: tuple[Part, ...] = Field(min_length=1)
    questions: tuple[Question, ...] = Field(min_length=1)
    closing: tuple[Part, ...] = Field(min_length=1)
    satisfaction: Satisfaction | None = None
    # Filled by the loader from the IVR frame of phrases.yaml when any question is asked by IVR.
    ivr_opening: tuple[Part, ...] = ()
    ivr_closing: tuple[Part, ...] = ()

    def question(self, question_id: str) -> Question:
        for question in self.questions:
            if question.id == question_id:
                return question
        raise KeyError(question_id)

    @property
    def ivr_questions(self) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if q.ivr is not None and not q.agent_only)

    def texts(self) -> Iterator[Text]:
        """Every text of the script, in reading order."""
        yield self.title
        yield self.purpose
        for part in self.opening:
            yield part.text
        for question in self.questions:
            yield question.text
            if question.hint is not None:
                yield question.hint
            for choice in question.choices:
                yield choice.text
            if question.ivr is not None:
                yield question.ivr.prompt
        for part in (*self.closing, *self.ivr_opening, *self.ivr_closing):
            yield part.text


def fingerprint(definition: ScriptDefinition) -> str:
    """SHA-256 of the definition's canonical JSON: equal iff the scripts say the same things.

    Formatting, comments and key order in the YAML do not matter; any changed word does.
    """
    data = definition.model_dump(mode="json", by_alias=True)
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# The name an opening part uses for the script's own purpose statement (rule SV-1).
PURPOSE = "purpose"


class StandardPhrase(_Frozen):
    text: Text
    only_if_late: StrictBool = False


class Frame(_Frozen):
    """Names of standard phrases for the start and the end of a call, in order."""

    opening: tuple[Identifier, ...] = Field(min_length=1)
    closing: tuple[Identifier, ...] = Field(min_length=1)


class PhraseBook(_Frozen):
    """`scripts/phrases.yaml`: the standard phrases and the phrases no script may contain."""

    standard: dict[Identifier, StandardPhrase]  # rule SV-1
    required: Frame  # rule SV-1: every agent script opens and closes with these, in this order
    ivr: Frame  # how the IVR opens and closes its call
    forbidden: tuple[Text, ...] = Field(min_length=1)  # rule SV-2, with English glosses
    praise_requests: tuple[Text, ...] = ()  # rule SV-3: never ask for praise
