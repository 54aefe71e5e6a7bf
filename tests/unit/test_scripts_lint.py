"""Each refusal of the lint, shown on a broken copy of the shipped scripts.

Every test breaks one thing in a copy and checks that loading refuses it with the file, the
line and the offending text.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from callcenter.questionnaires.loader import ScriptError, load_scripts, shipped_scripts_dir


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "scripts"
    shutil.copytree(shipped_scripts_dir(), target)
    return target


def edit(file: Path, old: str, new: str) -> None:
    text = file.read_text(encoding="utf-8")
    assert text.count(old) >= 1, f"{old!r} not in {file.name}"
    file.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(file: Path, needle: str, occurrence: int = 1) -> int:
    seen = 0
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in {file.name}")


def refusal(directory: Path) -> list[str]:
    with pytest.raises(ScriptError) as caught:
        load_scripts(directory)
    assert caught.value.problems
    return str(caught.value).splitlines()


def assert_reported(lines: list[str], file: Path, line: int, *fragments: str) -> str:
    """One reported problem is at `file:line` and contains every fragment."""
    prefix = f"{file}:{line}: "
    hits = [text for text in lines if text.startswith(prefix)]
    assert hits, f"nothing reported at {prefix}; got:\n" + "\n".join(lines)
    matching = [text for text in hits if all(f in text for f in fragments)]
    assert matching, f"at {prefix} expected {fragments}; got:\n" + "\n".join(hits)
    return matching[0]


# -- forbidden phrases (rule SV-2) and praise (rule SV-3) --------------------------------------


def test_forbidden_phrase_in_a_question(copy: Path) -> None:
    file = copy / "install.yaml"
    edit(file, "请问具体是什么情况？", "您这是什么意思？请问具体是什么情况？")
    problem = assert_reported(
        refusal(copy), file, line_of(file, "您这是什么意思"), "forbidden phrase", "什么意思", "SV-2"
    )
    assert "您这是什么意思？请问具体是什么情况" in problem  # the offending text


def test_forbidden_phrase_is_found_through_punctuation_and_polite_form(copy: Path) -> None:
    file = copy / "repair.yaml"
    edit(file, "请问是哪方面做得不到位？", "您 听着，请问是哪方面做得不到位？")
    assert_reported(refusal(copy), file, line_of(file, "您 听着"), "你听着", "SV-2")


def test_forbidden_gloss_in_english_on_the_exact_line_of_a_folded_text(copy: Path) -> None:
    file = copy / "install.yaml"
    edit(file, "a short follow-up, to check that it works", "a short follow-up. I don't know why")
    line = line_of(file, "I don't know why")
    assert line > line_of(file, "en: >-")  # the second line of a folded scalar
    assert_reported(refusal(copy), file, line, "forbidden phrase", "I don't know", "SV-2")


def test_forbidden_phrase_in_a_standard_phrase(copy: Path) -> None:
    file = copy / "phrases.yaml"
    edit(file, "zh: 再见！", "zh: 不行了，再见！")
    assert_reported(refusal(copy), file, line_of(file, "不行了，再见"), "不行", "SV-2")


def test_forbidden_phrase_in_a_template_file(copy: Path) -> None:
    template = copy / "agent.html.j2"
    template.write_text(
        "<p>{{ greeting }}</p>\n<p>{{ question }}</p>\n<p>还不明白吗？</p>\n", encoding="utf-8"
    )
    assert_reported(refusal(copy), template, 3, "forbidden phrase", "还不明白吗")


def test_asking_for_praise_is_refused(copy: Path) -> None:
    file = copy / "complaint.yaml"
    edit(file, "我们会认真改进。", "我们会认真改进，麻烦您给个好评。")
    assert_reported(refusal(copy), file, line_of(file, "给个好评"), "asks for praise", "SV-3")


# -- opening and closing (rule SV-1) -----------------------------------------------------------


def test_missing_greeting_in_the_opening(copy: Path) -> None:
    file = copy / "complaint.yaml"
    edit(file, "  - phrase: greeting\n", "")
    assert_reported(
        refusal(copy), file, line_of(file, "opening:"), "lacks the standard phrase 'greeting'"
    )


def test_missing_self_introduction_in_the_opening(copy: Path) -> None:
    file = copy / "churn.yaml"
    edit(file, "  - phrase: self_introduction\n", "")
    assert_reported(refusal(copy), file, line_of(file, "opening:"), "'self_introduction'", "SV-1")


def test_script_without_an_opening(copy: Path) -> None:
    file = copy / "install_delay.yaml"
    text = file.read_text(encoding="utf-8")
    start = text.index("opening:")
    file.write_text(text[:start] + text[text.index("questions:") :], encoding="utf-8")
    assert_reported(refusal(copy), file, line_of(file, "id: install_delay"), "no opening")


def test_missing_thanks_in_the_closing(copy: Path) -> None:
    file = copy / "fault_delay.yaml"
    edit(file, "  - phrase: thanks\n", "")
    assert_reported(
        refusal(copy), file, line_of(file, "closing:"), "lacks the standard phrase 'thanks'"
    )


def test_opening_phrases_out_of_order(copy: Path) -> None:
    file = copy / "install.yaml"
    edit(
        file,
        "  - phrase: greeting\n  - phrase: self_introduction\n",
        "  - phrase: self_introduction\n  - phrase: greeting\n",
    )
    assert_reported(refusal(copy), file, line_of(file, "opening:"), "out of order")


def test_unknown_standard_phrase(copy: Path) -> None:
    file = copy / "repair.yaml"
    edit(file, "  - phrase: ask_more_help\n", "  - phrase: ask_for_more\n")
    assert_reported(
        refusal(copy), file, line_of(file, "ask_for_more"), "unknown standard phrase", "ask_for"
    )


# -- conditions --------------------------------------------------------------------------------


def test_condition_on_a_later_question(copy: Path) -> None:
    file = copy / "install.yaml"
    edit(
        file,
        "when: {question: working, equals: false}",
        "when: {question: suggestions, equals: false}",
    )
    assert_reported(
        refusal(copy), file, line_of(file, "question: suggestions"), "comes later", "suggestions"
    )


def test_condition_on_itself(copy: Path) -> None:
    file = copy / "churn.yaml"
    edit(file, "when: {question: reinstall, in:", "when: {question: reinstall_when, in:")
    assert_reported(refusal(copy), file, line_of(file, "question: reinstall_when"), "comes later")


def test_condition_on_a_question_that_does_not_exist(copy: Path) -> None:
    file = copy / "complaint.yaml"
    edit(file, "when: {question: satisfied,", "when: {question: satisfaction,")
    line = line_of(file, "question: satisfaction,")
    assert_reported(refusal(copy), file, line, "does not exist", "satisfaction")


def test_condition_with_an_answer_the_question_cannot_have(copy: Path) -> None:
    file = copy / "install.yaml"
    edit(file, "when: {question: overall, in: [1, 2]}", "when: {question: overall, in: [0, 2]}")
    assert_reported(refusal(copy), file, line_of(file, "in: [0, 2]"), "cannot have", ": 0")


# -- translations ------------------------------------------------------------------------------


def test_question_without_translation(copy: Path) -> None:
    file = copy / "install.yaml"
    edit(file, "      en: Which part of this fell short?\n", "")
    line = line_of(file, "请问是哪方面做得不到位") - 1  # its `text:` key
    assert_reported(refusal(copy), file, line, "missing English translation", "做得不到位")


def test_untranslated_copy_of_the_chinese(copy: Path) -> None:
    file = copy / "churn.yaml"
    edit(
        file, "en: Roughly when do you think you might need it?", "en: 请问您大概什么时候会有需要？"
    )
    assert_reported(
        refusal(copy), file, line_of(file, "en: 请问您大概"), "contains Chinese", "什么时候"
    )


def test_choice_without_translation(copy: Path) -> None:
    file = copy / "complaint.yaml"
    edit(file, "{zh: 处理得太慢, en: It took too long}", "{zh: 处理得太慢}")
    assert_reported(refusal(copy), file, line_of(file, "{zh: 处理得太慢}"), "missing English")


# -- IVR ----------------------------------------------------------------------------------------


def test_ivr_key_mapped_twice(copy: Path) -> None:
    file = copy / "install.yaml"
    edit(file, 'keys: {"1": true, "2": false}', 'keys: {"1": true, "1": false}')
    assert_reported(refusal(copy), file, line_of(file, '"1": false'), "IVR key", "collide")


def test_ivr_keys_giving_the_same_answer_collide(copy: Path) -> None:
    file = copy / "repair.yaml"
    edit(file, '"4": 4, "5": 5}', '"4": 4, "5": 4}')
    lines = refusal(copy)
    line = line_of(file, '"5": 4}')
    assert_reported(lines, file, line, "IVR keys collide", "'4' and '5'")
    assert_reported(lines, file, line, "no IVR key gives the answer", "5")


def test_ivr_key_must_be_a_digit(copy: Path) -> None:
    file = copy / "complaint.yaml"
    edit(file, 'keys: {"1": true, "2": false}', 'keys: {"1": true, "*": false}')
    assert_reported(refusal(copy), file, line_of(file, '"*": false'), "one digit", "*")


def test_ivr_prompt_must_name_its_keys(copy: Path) -> None:
    file = copy / "fault_delay.yaml"
    edit(file, "仍未恢复，请按2。", "仍未恢复，请按其他键。")
    assert_reported(refusal(copy), file, line_of(file, "请按其他键"), "never says key '2'")


def test_question_says_neither_ivr_nor_agent_only(copy: Path) -> None:
    file = copy / "churn.yaml"
    edit(file, "    agent_only: true\n", "")
    assert_reported(
        refusal(copy), file, line_of(file, "- id: reason"), "neither how the IVR asks it"
    )


def test_free_text_cannot_be_asked_by_ivr(copy: Path) -> None:
    file = copy / "fault_delay.yaml"
    edit(
        file,
        "    agent_only: true\n",
        "    ivr:\n      prompt: {zh: 请说出号码。, en: Say the number.}\n",
    )
    assert_reported(refusal(copy), file, line_of(file, "    ivr:", 3), "cannot take free text")


# -- templates ---------------------------------------------------------------------------------


def test_unknown_template_variable(copy: Path) -> None:
    file = copy / "complaint_contact.yaml"
    edit(file, "en: Could you give us another", 'en: "{{ agent.nmae }}: Could you give us another')
    edit(file, "another number to reach you on?", 'another number to reach you on?"')
    assert_reported(
        refusal(copy), file, line_of(file, "agent.nmae"), "unknown template variable 'agent.nmae'"
    )


def test_ivr_prompt_cannot_name_the_agent(copy: Path) -> None:
    file = copy / "complaint.yaml"
    edit(file, "及时，请按1；", "{{ agent.name }}提醒您，及时，请按1；")
    assert_reported(refusal(copy), file, line_of(file, "agent.name }}提醒"), "IVR has no agent")


def test_template_syntax_error(copy: Path) -> None:
    file = copy / "install.yaml"
    edit(file, "en: Which part of this fell short?", "en: Which part {{ of this fell short?")
    assert_reported(refusal(copy), file, line_of(file, "Which part {{"), "template error")


# -- files --------------------------------------------------------------------------------------


def test_yaml_syntax_error(copy: Path) -> None:
    file = copy / "churn.yaml"
    edit(file, "  - id: opinions\n", "  - id: opinions\n   bad: [indent\n")
    lines = refusal(copy)
    assert any(text.startswith(f"{file}:") and "invalid YAML" in text for text in lines)


def test_missing_script_for_a_callback_type(copy: Path) -> None:
    (copy / "fault_delay.yaml").unlink()
    assert_reported(refusal(copy), copy / "fault_delay.yaml", 1, "no script")


def test_every_problem_is_reported_at_once(copy: Path) -> None:
    install = copy / "install.yaml"
    churn = copy / "churn.yaml"
    edit(install, "请问是哪方面做得不到位？", "神经病，请问是哪方面做得不到位？")
    edit(churn, "  - phrase: thanks\n", "")
    lines = refusal(copy)
    assert_reported(lines, install, line_of(install, "神经病"), "SV-2")
    assert_reported(lines, churn, line_of(churn, "closing:"), "'thanks'")
