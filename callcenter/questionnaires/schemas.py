"""The script and answers as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from callcenter.config import CallbackType, Channel
from callcenter.questionnaires.definitions import Lang, QuestionKind


class ChoiceRead(BaseModel):
    value: str
    text: str
    other: bool = Field(description="Choosing it needs the details as free text.")


class QuestionRead(BaseModel):
    number: int
    id: str
    kind: QuestionKind
    required: bool
    agent_only: bool
    text: str
    hint: str | None
    condition: str | None = Field(description="When it is asked, in words; empty: always.")
    asked: bool = Field(description="Whether it is to be asked given the answers so far.")
    depends_on: str | None = Field(
        default=None, description="The question whose answer decides whether it is asked."
    )
    shown_when: list[bool | int | str] = Field(
        default_factory=list, description="… asked when that answer is one of these."
    )
    choices: list[ChoiceRead]


class AnswerRead(BaseModel):
    id: int
    question_id: str
    value: Any = Field(description="true/false, a number, text, or {choice, text}.")
    channel: Channel
    recorded_by: str | None
    recorded_at: datetime
    corrects_id: int | None = Field(description="The answer this one corrects.")
    reason: str | None = Field(description="Why it was corrected.")
    corrected_by_id: int | None = Field(description="The correction that replaced this answer.")


class ScriptRead(BaseModel):
    """The script of one callback, rendered for the agent who holds it, in one language."""

    callback_id: int
    script_id: str
    version: int
    type: CallbackType
    lang: Lang
    title: str
    opening: list[str]
    questions: list[QuestionRead]
    closing: list[str]
    forbidden_phrases: list[str] = Field(description="Never to be said (rule SV-2).")
    answers: list[AnswerRead] = Field(description="Every answer recorded, corrections too.")


class AnswersCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answers: dict[str, Any] = Field(
        min_length=1,
        max_length=100,
        description="Question id → answer: true/false, a whole number, text, a choice value, "
        'or {"choice": "other", "text": "…"}.',
        examples=[{"answers": {"working": True, "rating": 5}}],
    )


class CorrectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    value: Any = Field(description="The corrected answer, in the same form as when recorded.")
    reason: str = Field(min_length=2, max_length=500, description="Why it is corrected.")
