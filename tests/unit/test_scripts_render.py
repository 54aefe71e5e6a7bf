"""Rendering: StrictUndefined, the late apology, and reviewed snapshots of every script.

Snapshots live in tests/snapshots/scripts/<type>.<lang>.txt. After a deliberate change to a
script, rewrite them with `UPDATE_SNAPSHOTS=1 pytest tests/unit/test_scripts_render.py` and
review the diff like any other change to what customers hear.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from callcenter.config import CallbackType
from callcenter.questionnaires.definitions import Lang, Text
from callcenter.questionnaires.loader import shipped_scripts
from callcenter.questionnaires.render import (
    AgentInfo,
    CallbackInfo,
    CustomerInfo,
    RenderContext,
    RenderError,
    Title,
    format_ivr,
    format_script,
    render_ivr,
    render_script,
    render_text,
    sample_context,
    template_variables,
)

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots" / "scripts"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"
LATE_HEADING = {Lang.ZH: "【开场白（回访已超时）】", Lang.EN: "[Opening, callback late]"}


def snapshot_text(kind: CallbackType, lang: Lang) -> str:
    """What a reviewer reads: the agent's script, the late opening, and the IVR call."""
    definition = shipped_scripts().for_type(kind)
    on_time = sample_context(lang, kind)
    text = format_script(render_script(definition, on_time, lang))
    late = render_script(definition, sample_context(lang, kind, late=True), lang)
    text += "\n" + "\n".join([LATE_HEADING[lang], *late.opening]) + "\n"
    if definition.ivr_questions:
        ivr_ctx = on_time.model_copy(update={"agent": None})
        text += "\n" + format_ivr(render_ivr(definition, ivr_ctx, lang))
    return text


@pytest.mark.parametrize("lang", list(Lang))
@pytest.mark.parametrize("kind", list(CallbackType))
def test_rendered_script_matches_reviewed_snapshot(kind: CallbackType, lang: Lang) -> None:
    actual = snapshot_text(kind, lang)
    path = SNAPSHOTS / f"{kind}.{lang}.txt"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.is_file(), f"no snapshot {path.name}; run with UPDATE_SNAPSHOTS=1 and review it"
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), "snapshot", "rendered", lineterm=""
        )
        pytest.fail(f"{path.name} differs from the rendering:\n" + "\n".join(diff))


def test_no_stale_snapshots() -> None:
    wanted = {f"{kind}.{lang}.txt" for kind in CallbackType for lang in Lang}
    assert {p.name for p in SNAPSHOTS.glob("*.txt")} == wanted


def _ctx(*, late: bool = False, agent: bool = True) -> RenderContext:
    return RenderContext(
        agent=AgentInfo(name="陈静", employee_number="0731") if agent else None,
        customer=CustomerInfo(name="林", title=Title.MS),
        callback=CallbackInfo(type=CallbackType.REPAIR, order_id="GZ-42", late=late),
    )


def test_opening_names_the_agent_customer_and_employee_number() -> None:
    # rule SV-1
    definition = shipped_scripts().for_type(CallbackType.REPAIR)
    zh = render_script(definition, _ctx(), Lang.ZH)
    assert zh.opening[0] == "林女士，您好！"
    assert "陈静" in zh.opening[1] and "工号0731" in zh.opening[1]
    en = render_script(definition, _ctx(), Lang.EN)
    assert en.opening[0] == "Hello, Ms 林."
    assert "employee number 0731" in en.opening[1]


@pytest.mark.parametrize("kind", list(CallbackType))
def test_apology_only_when_the_callback_is_late(kind: CallbackType) -> None:
    # rule SV-1: 非常抱歉，让您久等了。
    definition = shipped_scripts().for_type(kind)
    for lang, apology in ((Lang.ZH, "非常抱歉，让您久等了。"), (Lang.EN, "kept you waiting")):
        on_time = render_script(definition, sample_context(lang, kind), lang)
        late = render_script(definition, sample_context(lang, kind, late=True), lang)
        assert not any(apology in line for line in on_time.opening)
        assert any(apology in line for line in late.opening)
        assert len(late.opening) == len(on_time.opening) + 1


def test_missing_variable_is_an_error_never_a_gap() -> None:
    variables = template_variables(_ctx(), Lang.ZH)
    with pytest.raises(RenderError, match="nmae"):
        render_text(Text(zh="{{ customer.nmae }}您好", en="Hello"), variables, Lang.ZH)
    with pytest.raises(RenderError, match="planned_date"):
        render_text(
            Text(zh="日期{{ callback.planned_date }}", en="x"), variables, Lang.ZH, where="t"
        )
    with pytest.raises(RenderError, match="undefined"):
        render_text(Text(zh="中", en="{{ order }}"), variables, Lang.EN)


def test_agent_script_without_an_agent_is_refused() -> None:
    definition = shipped_scripts().for_type(CallbackType.INSTALL)
    with pytest.raises(RenderError, match="agent"):
        render_script(definition, _ctx(agent=False), Lang.ZH)


def test_ivr_call_needs_no_agent_and_skips_agent_only_questions() -> None:
    definition = shipped_scripts().for_type(CallbackType.COMPLAINT)
    call = render_ivr(definition, _ctx(agent=False), Lang.ZH)
    assert call.opening[0].startswith("林女士，您好！这里是中国铁通10050客服中心")
    assert [p.question_id for p in call.prompts] == ["satisfied", "earlier_complaints", "timely"]
    assert [(k.key, k.value) for k in call.prompts[0].keys] == [("1", True), ("2", False)]
    assert call.prompts[1].max_digits == 2
    assert call.closing[-1] == "再见！"


def test_ivr_rendering_of_an_agent_only_script_is_refused() -> None:
    definition = shipped_scripts().for_type(CallbackType.CHURN)
    with pytest.raises(RenderError, match="agents only"):
        render_ivr(definition, _ctx(agent=False), Lang.ZH)


def test_output_is_plain_text_not_html_escaped() -> None:
    # The console's HTML templates escape on insertion; escaping here would show "&amp;".
    ctx = _ctx().model_copy(
        update={"customer": CustomerInfo(name="O'Brien & <Co>", title=Title.MR)}
    )
    definition = shipped_scripts().for_type(CallbackType.INSTALL)
    assert render_script(definition, ctx, Lang.EN).opening[0] == "Hello, Mr O'Brien & <Co>."


def test_templates_cannot_reach_python_internals() -> None:
    variables = template_variables(_ctx(), Lang.EN)
    with pytest.raises(RenderError):
        render_text(
            Text(zh="中", en="{{ customer.__class__.__mro__ }}"), variables, Lang.EN, where="x"
        )
