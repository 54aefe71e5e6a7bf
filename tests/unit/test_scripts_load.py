"""The shipped scripts load, pass every check, and are what the handbook asks for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from callcenter.config import CallbackType
from callcenter.questionnaires.definitions import (
    PURPOSE,
    QuestionKind,
    ScriptDefinition,
    fingerprint,
)
from callcenter.questionnaires.loader import load_scripts, shipped_scripts, shipped_scripts_dir

SHIPPED = shipped_scripts_dir()


def test_shipped_dir_is_the_top_level_scripts_folder() -> None:
    assert SHIPPED.name == "scripts"
    assert (SHIPPED / "phrases.yaml").is_file()
    assert (SHIPPED.parent / "pyproject.toml").is_file()


def test_shipped_scripts_pass_lint_with_one_script_per_callback_type() -> None:
    scripts = load_scripts()
    assert set(scripts.scripts) == set(CallbackType)
    assert len(scripts) == len(CallbackType)
    for kind, definition in scripts.scripts.items():
        assert definition.type is kind
        assert (SHIPPED / f"{definition.id}.yaml").is_file()


def test_shipped_scripts_are_cached_for_start_up() -> None:
    assert shipped_scripts() is shipped_scripts()


@pytest.mark.parametrize("kind", list(CallbackType))
def test_every_script_opens_and_closes_with_the_standard_phrases(kind: CallbackType) -> None:
    # rule SV-1
    definition = shipped_scripts().for_type(kind)
    opening = [part.phrase for part in definition.opening]
    closing = [part.phrase for part in definition.closing]
    assert opening[:4] == ["greeting", "self_introduction", "apology_late", PURPOSE]
    assert closing[-2:] == ["thanks", "farewell"]
    assert [p.only_if_late for p in definition.opening if p.phrase == "apology_late"] == [True]
    purpose = next(p for p in definition.opening if p.phrase == PURPOSE)
    assert purpose.text == definition.purpose


def _kinds(definition: ScriptDefinition) -> list[QuestionKind]:
    return [q.kind for q in definition.questions]


def test_questions_follow_chapter_4_section_2() -> None:
    scripts = shipped_scripts()
    for kind in (CallbackType.INSTALL, CallbackType.REPAIR):
        # rules Q-INSTALL, Q-REPAIR: working, appointment, conduct, overall rating, suggestions
        ids = [q.id for q in scripts.for_type(kind).questions]
        for wanted in ("working", "appointment_kept", "conduct_standard", "overall"):
            assert wanted in ids
        assert ids[-1] == "suggestions"
    complaint = scripts.for_type(CallbackType.COMPLAINT)  # rule Q-COMPLAINT
    assert complaint.question("satisfied").kind is QuestionKind.YES_NO
    assert complaint.question("earlier_complaints").kind is QuestionKind.COUNT
    assert complaint.question("timely").kind is QuestionKind.YES_NO
    why = complaint.question("dissatisfied_reason")
    assert why.when is not None and why.when.question == "satisfied"
    assert why.when.values == (False,)
    churn = scripts.for_type(CallbackType.CHURN)  # rule Q-CHURN
    assert churn.question("reason").kind is QuestionKind.CHOICE
    assert any(c.other for c in churn.question("reason").choices)
    assert all(q.agent_only for q in churn.questions)  # rule CB-6: a person on the line


def test_satisfaction_marker_is_defined_once_in_data() -> None:
    scripts = shipped_scripts()
    install = scripts.for_type(CallbackType.INSTALL).satisfaction
    complaint = scripts.for_type(CallbackType.COMPLAINT).satisfaction
    assert install is not None and install.question == "overall"
    assert install.dissatisfied == (1, 2)
    assert complaint is not None and complaint.dissatisfied == (False,)
    assert scripts.for_type(CallbackType.CHURN).satisfaction is None


def test_ivr_frame_is_filled_only_for_scripts_the_ivr_can_ask() -> None:
    for definition in shipped_scripts().scripts.values():
        if definition.ivr_questions:
            assert [p.phrase for p in definition.ivr_opening][0] == "ivr_greeting"
            assert [p.phrase for p in definition.ivr_closing] == ["thanks", "farewell"]
        else:
            assert definition.ivr_opening == () and definition.ivr_closing == ()


def test_fingerprint_is_stable_and_ignores_formatting(tmp_path: Path) -> None:
    copy = tmp_path / "scripts"
    shutil.copytree(SHIPPED, copy)
    install = copy / "install.yaml"
    # Same data, other formatting: keys sorted, comments and folding gone.
    data = yaml.safe_load(install.read_text(encoding="utf-8"))
    install.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=True), encoding="utf-8")
    reloaded = load_scripts(copy).for_type(CallbackType.INSTALL)
    original = shipped_scripts().for_type(CallbackType.INSTALL)
    assert fingerprint(reloaded) == fingerprint(original)
    assert len(fingerprint(original)) == 64
    fingerprints = {fingerprint(d) for d in shipped_scripts().scripts.values()}
    assert len(fingerprints) == len(CallbackType)


def test_fingerprint_changes_with_any_word(tmp_path: Path) -> None:
    copy = tmp_path / "scripts"
    shutil.copytree(SHIPPED, copy)
    original = shipped_scripts()
    phrases = copy / "phrases.yaml"
    text = phrases.read_text(encoding="utf-8")
    assert "再见！" in text
    phrases.write_text(text.replace("再见！", "再会！"), encoding="utf-8")
    changed = load_scripts(copy)
    for kind in CallbackType:
        # a shared phrase is part of every script that says it
        assert fingerprint(changed.for_type(kind)) != fingerprint(original.for_type(kind))


def test_a_definition_round_trips_through_json_with_its_fingerprint() -> None:
    # A version is frozen as JSON in the database and read back later.
    for definition in shipped_scripts().scripts.values():
        data = json.loads(json.dumps(definition.model_dump(mode="json", by_alias=True)))
        again = ScriptDefinition.model_validate(data)
        assert again == definition
        assert fingerprint(again) == fingerprint(definition)
