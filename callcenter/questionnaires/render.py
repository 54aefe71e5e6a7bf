"""Render a script for an agent or for the IVR, in one language.

Texts are Jinja2 templates filled with the agent, the customer and the callback. Undefined
variables raise (`StrictUndefined`): a script never reaches a customer with a gap where a name
should be (rule SV-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from callcenter.config import CallbackType
from callcenter.questionnaires.definitions import (
    Condition,
    Lang,
    Part,
    Question,
    QuestionKind,
    Scalar,
    ScriptDefinition,
    Text,
)


class Title(StrEnum):
    MR = "mr"
    MS = "ms"


TITLE_WORDS: dict[Title, Text] = {
    Title.MR: Text(zh="先生", en="Mr"),
    Title.MS: Text(zh="女士", en="Ms"),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AgentInfo(_Frozen):
    name: str = Field(min_length=1)
    employee_number: str = Field(min_length=1)  # rule SV-1: the agent says it on every call


class CustomerInfo(_Frozen):
    # With a title: the family name (王, Wang); without one: the full name (王芳).
    name: str = Field(min_length=1)
    title: Title | None = None


class CallbackInfo(_Frozen):
    type: CallbackType
    order_id: str = Field(min_length=1)
    late: StrictBool = False  # past its target: the opening apologises (rule SV-1)


class RenderContext(_Frozen):
    agent: AgentInfo | None = None  # None on the IVR, which has no agent
    customer: CustomerInfo
    callback: CallbackInfo


# The variables a template may use, and their fields: the lint checks templates against these.
TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "agent": frozenset(AgentInfo.model_fields),
    "customer": frozenset(CustomerInfo.model_fields) | {"address"},
    "callback": frozenset(CallbackInfo.model_fields),
}
IVR_VARIABLES = frozenset({"customer", "callback"})


class RenderError(Exception):
    """A template could not be rendered, most often because a variable is missing."""


def make_environment() -> SandboxedEnvironment:
    # Plain text out: speech for the IVR, and strings that the console's HTML templates escape
    # when they insert them; escaping here as well would show customers "&amp;".
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


_ENV = make_environment()


@lru_cache(maxsize=4096)
def _compile(source: str) -> Template:
    return _ENV.from_string(source)


def template_variables(ctx: RenderContext, lang: Lang) -> dict[str, Any]:
    title = "" if ctx.customer.title is None else TITLE_WORDS[ctx.customer.title].get(lang)
    variables: dict[str, Any] = {
        "customer": {
            "name": ctx.customer.name,
            "title": title,
            "address": addressed(ctx.customer.name, title, lang),
        },
        "callback": {
            "type": str(ctx.callback.type),
            "order_id": ctx.callback.order_id,
            "late": ctx.callback.late,
        },
    }
    if ctx.agent is not None:
        variables["agent"] = ctx.agent.model_dump()
    return variables


def addressed(name: str, title: str, lang: Lang) -> str:
    """How the customer is addressed (rule SV-1): 王女士, Ms Wang, or the name alone."""
    if not title:
        return name
    return f"{name}{title}" if lang is Lang.ZH else f"{title} {name}"


def render_text(text: Text, variables: dict[str, Any], lang: Lang, *, where: str = "") -> str:
    """Render one text; raise `RenderError` naming `where` when a variable is missing."""
    try:
        return _compile(text.get(lang)).render(variables).strip()
    except TemplateError as exc:
        raise RenderError(f"{where}: {exc.message}" if where else str(exc.message)) from exc


@dataclass(frozen=True)
class RenderedChoice:
    value: str
    text: str
    other: bool


@dataclass(frozen=True)
class RenderedKey:
    key: str
    value: Scalar
    label: str


@dataclass(frozen=True)
class RenderedPrompt:
    """What the IVR says for one question, and what it listens for."""

    question_id: str
    text: str
    keys: tuple[RenderedKey, ...]
    max_digits: int | None


@dataclass(frozen=True)
class RenderedQuestion:
    number: int
    id: str
    kind: QuestionKind
    required: bool
    agent_only: bool
    text: str
    hint: str | None
    condition: str | None  # when it is asked, in words; None when it always is
    choices: tuple[RenderedChoice, ...]
    ivr: RenderedPrompt | None


@dataclass(frozen=True)
class RenderedScript:
    script_id: str
    type: CallbackType
    lang: Lang
    title: str
    opening: tuple[str, ...]
    questions: tuple[RenderedQuestion, ...]
    closing: tuple[str, ...]


@dataclass(frozen=True)
class RenderedIvrCall:
    script_id: str
    type: CallbackType
    lang: Lang
    opening: tuple[str, ...]
    prompts: tuple[RenderedPrompt, ...]
    closing: tuple[str, ...]


def answer_label(question: Question, value: Scalar, lang: Lang) -> str:
    """An answer value as a person reads it: 是/否, 4分, the choice's text."""
    if question.kind is QuestionKind.YES_NO and isinstance(value, bool):
        return _LABELS["yes" if value else "no"].get(lang)
    if question.kind is QuestionKind.RATING:
        return f"{value}分" if lang is Lang.ZH else str(value)
    if question.kind is QuestionKind.CHOICE and isinstance(value, str):
        choice = question.choice(value)
        if choice is not None:
            return choice.text.get(lang)
    return str(value)


def describe_condition(definition: ScriptDefinition, condition: Condition, lang: Lang) -> str:
    numbers = {q.id: n for n, q in enumerate(definition.questions, start=1)}
    source = definition.question(condition.question)
    labels = [answer_label(source, value, lang) for value in condition.values]
    if lang is Lang.ZH:
        values = "或".join(f"“{label}”" for label in labels)
        return f"仅当第{numbers[source.id]}题的回答为{values}时询问"
    values = " or ".join(f'"{label}"' for label in labels)
    return f"Asked only if the answer to question {numbers[source.id]} is {values}"


def _parts(
    parts: tuple[Part, ...], variables: dict[str, Any], ctx: RenderContext, lang: Lang, where: str
) -> tuple[str, ...]:
    return tuple(
        render_text(part.text, variables, lang, where=f"{where}[{i}]")
        for i, part in enumerate(parts)
        if ctx.callback.late or not part.only_if_late
    )


def _prompt(
    definition: ScriptDefinition, question: Question, variables: dict[str, Any], lang: Lang
) -> RenderedPrompt | None:
    if question.ivr is None or question.agent_only:
        return None
    where = f"{definition.id}: {question.id}.ivr.prompt"
    keys = tuple(
        RenderedKey(key=key, value=value, label=answer_label(question, value, lang))
        for key, value in (question.ivr.keys or {}).items()
    )
    return RenderedPrompt(
        question_id=question.id,
        text=render_text(question.ivr.prompt, variables, lang, where=where),
        keys=keys,
        max_digits=question.ivr.max_digits,
    )


def render_script(definition: ScriptDefinition, ctx: RenderContext, lang: Lang) -> RenderedScript:
    """The script as the agent reads it: opening, questions with their IVR prompts, closing."""
    variables = template_variables(ctx, lang)
    questions = []
    for number, question in enumerate(definition.questions, start=1):
        where = f"{definition.id}: {question.id}"
        questions.append(
            RenderedQuestion(
                number=number,
                id=question.id,
                kind=question.kind,
                required=question.required,
                agent_only=question.agent_only,
                text=render_text(question.text, variables, lang, where=f"{where}.text"),
                hint=(
                    render_text(question.hint, variables, lang, where=f"{where}.hint")
                    if question.hint is not None
                    else None
                ),
                condition=(
                    describe_condition(definition, question.when, lang)
                    if question.when is not None
                    else None
                ),
                choices=tuple(
                    RenderedChoice(
                        value=choice.value,
                        text=render_text(choice.text, variables, lang, where=f"{where}.choices"),
                        other=choice.other,
                    )
                    for choice in question.choices
                ),
                ivr=_prompt(definition, question, variables, lang),
            )
        )
    return RenderedScript(
        script_id=definition.id,
        type=definition.type,
        lang=lang,
        title=render_text(definition.title, variables, lang, where=f"{definition.id}: title"),
        opening=_parts(definition.opening, variables, ctx, lang, f"{definition.id}: opening"),
        questions=tuple(questions),
        closing=_parts(definition.closing, variables, ctx, lang, f"{definition.id}: closing"),
    )


def render_ivr(definition: ScriptDefinition, ctx: RenderContext, lang: Lang) -> RenderedIvrCall:
    """What the IVR says: its own opening, the prompts of the questions it asks, its closing."""
    if not definition.ivr_questions:
        raise RenderError(f"{definition.id}: every question is asked by agents only")
    variables = template_variables(ctx, lang)
    prompts = [_prompt(definition, q, variables, lang) for q in definition.ivr_questions]
    return RenderedIvrCall(
        script_id=definition.id,
        type=definition.type,
        lang=lang,
        opening=_parts(definition.ivr_opening, variables, ctx, lang, f"{definition.id}: ivr"),
        prompts=tuple(p for p in prompts if p is not None),
        closing=_parts(definition.ivr_closing, variables, ctx, lang, f"{definition.id}: ivr"),
    )


_LABELS: dict[str, Text] = {
    "yes": Text(zh="是", en="Yes"),
    "no": Text(zh="否", en="No"),
    "opening": Text(zh="开场白", en="Opening"),
    "questions": Text(zh="问题", en="Questions"),
    "closing": Text(zh="结束语", en="Closing"),
    "required": Text(zh="必答", en="required"),
    "optional": Text(zh="选答", en="optional"),
    "agent_only": Text(zh="仅由坐席询问", en="asked by agents only"),
    "by_ivr": Text(zh="坐席或IVR询问", en="asked by agents or IVR"),
    "hint": Text(zh="提示", en="Hint"),
    "choices": Text(zh="选项", en="Choices"),
    "specify": Text(zh="（请注明）", en="(please specify)"),
    "ivr_call": Text(zh="IVR语音回访", en="IVR call"),
    "digits": Text(zh="按数字键输入，以#号键结束，最多{n}位", en="digits ended by #, up to {n}"),
    "kind.yes_no": Text(zh="是非题", en="yes/no"),
    "kind.rating": Text(zh="评分（1–5分）", en="rating 1–5"),
    "kind.count": Text(zh="次数", en="count"),
    "kind.choice": Text(zh="单选", en="single choice"),
    "kind.text": Text(zh="文字", en="free text"),
}


def _label(name: str, lang: Lang) -> str:
    return _LABELS[name].get(lang)


def _heading(name: str, lang: Lang) -> str:
    return f"【{_label(name, lang)}】" if lang is Lang.ZH else f"[{_label(name, lang)}]"


def _colon(lang: Lang) -> str:
    return "：" if lang is Lang.ZH else ": "


def _format_prompt(prompt: RenderedPrompt, lang: Lang, indent: str, lead: str) -> list[str]:
    lines = [f"{indent}{lead}{prompt.text}"]
    press = "按" if lang is Lang.ZH else "press "
    for key in prompt.keys:
        lines.append(f"{indent}  {press}{key.key} → {key.label}")
    if prompt.max_digits is not None:
        lines.append(f"{indent}  {_label('digits', lang).format(n=prompt.max_digits)}")
    return lines


def format_script(rendered: RenderedScript) -> str:
    """The rendered script as plain text, for review and for a printed copy."""
    lang = rendered.lang
    colon = _colon(lang)
    lines = [f"{rendered.title} ({rendered.script_id})", ""]
    lines += [_heading("opening", lang), *rendered.opening, ""]
    lines.append(_heading("questions", lang))
    for q in rendered.questions:
        flags = [
            q.id,
            _label(f"kind.{q.kind}", lang),
            _label("required" if q.required else "optional", lang),
            _label("agent_only" if q.ivr is None else "by_ivr", lang),
        ]
        lines.append(f"{q.number}. {q.text}")
        lines.append(f"   [{' · '.join(flags)}]")
        if q.condition is not None:
            lines.append(f"   {q.condition}")
        if q.hint is not None:
            lines.append(f"   {_label('hint', lang)}{colon}{q.hint}")
        if q.choices:
            lines.append(f"   {_label('choices', lang)}{colon.rstrip()}")
            for choice in q.choices:
                specify = _label("specify", lang) if choice.other else ""
                space = " " if specify and lang is Lang.EN else ""
                lines.append(f"     - {choice.value}: {choice.text}{space}{specify}")
        if q.ivr is not None:
            lines += _format_prompt(q.ivr, lang, "   ", f"IVR{colon}")
    lines += ["", _heading("closing", lang), *rendered.closing]
    return "\n".join(lines) + "\n"


def format_ivr(rendered: RenderedIvrCall) -> str:
    """The IVR call as plain text: what the machine says, in order, and the keys it takes."""
    lang = rendered.lang
    lines = [_heading("ivr_call", lang), *rendered.opening]
    for prompt in rendered.prompts:
        lines += _format_prompt(prompt, lang, "", f"({prompt.question_id}) ")
    lines += rendered.closing
    return "\n".join(lines) + "\n"


def sample_context(lang: Lang, kind: CallbackType, *, late: bool = False) -> RenderContext:
    """A made-up agent, customer and order, to preview a script (`callcenter scripts show`)."""
    return RenderContext(
        agent=AgentInfo(name="李娜" if lang is Lang.ZH else "Li Na", employee_number="2051"),
        customer=CustomerInfo(name="王" if lang is Lang.ZH else "Wang", title=Title.MR),
        callback=CallbackInfo(type=kind, order_id="FJ2015070300127", late=late),
    )
