"""The checks a script must pass before it is used. Each returns problems with file and line.

- rule SV-2 / SV-3: no forbidden phrase and no request for praise anywhere, in any language,
  in scripts, in the standard phrases and in template files;
- rule SV-1: every script opens and closes with the standard phrases, in order;
- conditions refer to earlier questions and to answers those questions can have;
- every question says how the IVR asks it, with keys that do not collide, or that agents ask it;
- templates compile and use only the variables a call provides.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes

from callcenter.questionnaires.definitions import (
    PURPOSE,
    RATING_MAX,
    RATING_MIN,
    Condition,
    PhraseBook,
    Question,
    QuestionKind,
    ScriptDefinition,
    Text,
)
from callcenter.questionnaires.render import IVR_VARIABLES, TEMPLATE_FIELDS, make_environment
from callcenter.questionnaires.source import (
    LocatedDocument,
    PathKey,
    Problem,
    scalar_text,
    shorten,
)

# rule SV-2 / SV-3: the phrase lists themselves are the only place these words may stand.
PHRASE_LISTS = ("forbidden", "praise_requests")
TEMPLATE_SUFFIXES = (".j2", ".jinja", ".html")
IVR_KEYS = frozenset("0123456789")  # '*' repeats the prompt and '#' ends digits


# -- forbidden phrases (rules SV-2, SV-3) ------------------------------------------------------


@dataclass(frozen=True)
class _Banned:
    phrase: Text
    rule: str
    what: str
    zh_needle: str
    en_words: tuple[str, ...]


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def _squeeze(text: str) -> tuple[str, list[int]]:
    """Text without punctuation, spaces and symbols, 您 read as 你, with each kept char's index.

    So "你听着…" is caught in "您 听着！" and a phrase cannot hide behind a comma.
    """
    kept: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if unicodedata.category(ch)[0] in "PZSC":
            continue
        kept.append("你" if ch == "您" else ch.lower())
        where.append(i)
    return "".join(kept), where


def _words(text: str) -> list[tuple[str, int, int]]:
    lowered = text.lower().replace("\u2019", "'")
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(lowered)]


def _banned(book: PhraseBook) -> list[_Banned]:
    lists = (
        (book.forbidden, "rule SV-2", "forbidden phrase"),
        (book.praise_requests, "rule SV-3", "asks for praise"),
    )
    return [
        _Banned(
            phrase=entry,
            rule=rule,
            what=what,
            zh_needle=_squeeze(entry.zh)[0],
            en_words=tuple(w for w, _, _ in _words(entry.en)),
        )
        for entries, rule, what in lists
        for entry in entries
    ]


def _matches(
    text: str, banned_list: list[_Banned], *, english: bool
) -> Iterator[tuple[_Banned, str]]:
    """Each banned phrase in `text`, with the fragment of `text` (as written) where it stands."""
    squeezed, where = _squeeze(text)
    words = _words(text) if english else []
    tokens = tuple(w for w, _, _ in words)
    for banned in banned_list:
        start = squeezed.find(banned.zh_needle) if banned.zh_needle else -1
        while start >= 0:
            end = start + len(banned.zh_needle) - 1
            yield banned, text[where[start] : where[end] + 1]
            start = squeezed.find(banned.zh_needle, start + 1)
        size = len(banned.en_words)
        for i in range(len(tokens) - size + 1 if size else 0):
            if tokens[i : i + size] == banned.en_words:
                yield banned, text[words[i][1] : words[i + size - 1][2]]


def _banned_message(banned: _Banned) -> str:
    return f"{banned.what} “{banned.phrase.zh}” ({banned.phrase.en}) ({banned.rule})"


def forbidden_problems(
    doc: LocatedDocument, book: PhraseBook, *, skip: tuple[str, ...] = ()
) -> list[Problem]:
    """Every string of the document, in both languages, against the banned phrase lists.

    `skip` names top-level keys not to look in (the phrase lists themselves).
    """
    problems = []
    banned_list = _banned(book)
    for path, value in doc.strings():
        if path and path[0] in skip:
            continue
        english = bool(path) and path[-1] == "en"
        for banned, fragment in _matches(value, banned_list, english=english):
            line = doc.line_in_scalar(path, fragment)
            problems.append(Problem(doc.file, line, _banned_message(banned), shorten(value)))
    return problems


def template_file_problems(file: Path, book: PhraseBook) -> list[Problem]:
    """A template file (agent page, IVR speech) against the banned phrase lists."""
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(file, 1, "cannot read the template", str(exc))]
    problems = []
    banned_list = _banned(book)
    for number, line in enumerate(source.splitlines(), start=1):
        for banned, _ in _matches(line, banned_list, english=True):
            problems.append(Problem(file, number, _banned_message(banned), shorten(line)))
    return problems


# -- opening and closing (rule SV-1) -----------------------------------------------------------


def reference_problem(item: dict[str, Any], book: PhraseBook) -> str | None:
    """Why an opening or closing part that names a standard phrase cannot be resolved."""
    if set(item) != {"phrase"}:
        return "a part names a standard phrase or has its own text, not both"
    if item["phrase"] != PURPOSE and item["phrase"] not in book.standard:
        return "unknown standard phrase"
    return None


def frame_problems(doc: LocatedDocument, book: PhraseBook) -> list[Problem]:
    """rule SV-1: the opening and the closing hold the standard phrases, in their order."""
    problems = []
    for section, required in (
        ("opening", book.required.opening),
        ("closing", book.required.closing),
    ):
        items = doc.get((section,))
        if items is None:
            problems.append(doc.problem((), f"no {section} (rule SV-1)", section))
            continue
        if not isinstance(items, list):
            continue  # the schema check reports it
        names = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "phrase" not in item:
                continue
            names.append(str(item["phrase"]))
            why = reference_problem(item, book)
            if why is not None:
                problems.append(doc.problem((section, i, "phrase"), why, str(item["phrase"])))
        found = ", ".join(names) or "(no standard phrases)"
        missing = [name for name in required if name not in names]
        for name in missing:
            problems.append(
                doc.problem(
                    (section,),
                    f"the {section} lacks the standard phrase '{name}' (rule SV-1)",
                    found,
                )
            )
        in_order = [name for name in names if name in required]
        if not missing and in_order[: len(required)] != list(required):
            problems.append(
                doc.problem(
                    (section,),
                    f"the standard phrases of the {section} are out of order; expected "
                    + ", ".join(required)
                    + " (rule SV-1)",
                    found,
                )
            )
    return problems


# -- templates ---------------------------------------------------------------------------------

_ENV = make_environment()


def template_problems(
    doc: LocatedDocument, is_ivr: Callable[[PathKey], bool], *, skip: tuple[str, ...] = ()
) -> list[Problem]:
    """Every text compiles as a Jinja2 template and uses only the variables a call provides.

    Texts the IVR speaks may not use `agent`: there is none on an IVR call.
    """
    problems = []
    for path, value in doc.strings():
        if not path or path[-1] not in ("zh", "en") or path[0] in skip:
            continue
        try:
            ast = _ENV.parse(value)
        except TemplateSyntaxError as exc:
            lines = value.splitlines() or [value]
            bad = lines[min(max(exc.lineno, 1), len(lines)) - 1]
            line = doc.line_in_scalar(path, bad.strip()) if bad.strip() else doc.line_of(path)
            problems.append(Problem(doc.file, line, f"template error: {exc.message}", bad))
            continue
        allowed = IVR_VARIABLES if is_ivr(path) else frozenset(TEMPLATE_FIELDS)
        for name in sorted(meta.find_undeclared_variables(ast)):
            if name not in allowed:
                why = " (the IVR has no agent)" if name in TEMPLATE_FIELDS else ""
                problems.append(
                    doc.problem(path, f"unknown template variable '{name}'{why}", shorten(value))
                )
        for attr in ast.find_all(nodes.Getattr):
            if not isinstance(attr.node, nodes.Name) or attr.node.name not in allowed:
                continue
            if attr.attr not in TEMPLATE_FIELDS[attr.node.name]:
                problems.append(
                    doc.problem(
                        path,
                        f"unknown template variable '{attr.node.name}.{attr.attr}'",
                        shorten(value),
                    )
                )
    return problems


# -- one script's questions ---------------------------------------------------------------------


def _possible(question: Question, value: object) -> bool:
    """Whether `value` is an answer `question` can have (as a condition or key names it)."""
    kind = question.kind
    if kind is QuestionKind.YES_NO:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is QuestionKind.RATING:
        return isinstance(value, int) and RATING_MIN <= value <= RATING_MAX
    if kind is QuestionKind.COUNT:
        return isinstance(value, int) and value >= 0
    if kind is QuestionKind.CHOICE:
        return isinstance(value, str) and question.choice(value) is not None
    return False


def _all_answers(question: Question) -> list[Any]:
    """The answers an IVR must offer keys for: every one but free text."""
    if question.kind is QuestionKind.YES_NO:
        return [True, False]
    if question.kind is QuestionKind.RATING:
        return list(range(RATING_MIN, RATING_MAX + 1))
    return [c.value for c in question.choices if not c.other]


def _condition_problems(
    doc: LocatedDocument, definition: ScriptDefinition, index: int, condition: Condition
) -> list[Problem]:
    base: PathKey = ("questions", index, "when")
    if condition.equals is not None and condition.in_ is not None:
        return [doc.problem(base, "a condition has `equals` or `in`, not both", "")]
    if not condition.values:
        return [doc.problem(base, "a condition needs `equals` or `in`", condition.question)]
    position = {q.id: i for i, q in enumerate(definition.questions)}
    target = position.get(condition.question)
    where = (*base, "question")
    if target is None:
        return [
            doc.problem(
                where, "the condition refers to a question that does not exist", condition.question
            )
        ]
    if target >= index:
        return [
            doc.problem(
                where,
                "the condition refers to a question that comes later (or to itself)",
                condition.question,
            )
        ]
    source = definition.questions[target]
    if source.kind is QuestionKind.TEXT:
        return [doc.problem(where, "a condition cannot depend on a free-text answer", source.id)]
    values_path = (*base, "in") if condition.in_ is not None else (*base, "equals")
    return [
        doc.problem(values_path, f"'{source.id}' cannot have this answer", scalar_text(value))
        for value in condition.values
        if not _possible(source, value)
    ]


def _ivr_problems(
    doc: LocatedDocument, definition: ScriptDefinition, index: int, question: Question
) -> list[Problem]:
    base: PathKey = ("questions", index)
    ivr = question.ivr
    if ivr is None and not question.agent_only:
        return [
            doc.problem(
                base,
                "the question says neither how the IVR asks it (`ivr`) nor that agents only "
                "ask it (`agent_only: true`)",
                question.id,
            )
        ]
    if ivr is None:
        return []
    if question.agent_only:
        return [doc.problem((*base, "ivr"), "`ivr` and `agent_only: true` contradict", question.id)]
    if question.kind is QuestionKind.TEXT:
        return [
            doc.problem(
                (*base, "ivr"),
                "the IVR cannot take free text; mark the question `agent_only: true`",
                question.id,
            )
        ]
    problems = []
    if question.when is not None:
        source = next((q for q in definition.questions if q.id == question.when.question), None)
        if source is not None and (source.agent_only or source.ivr is None):
            problems.append(
                doc.problem(
                    (*base, "when", "question"),
                    "the IVR asks this question, but only an agent asks the one its condition "
                    "depends on",
                    source.id,
                )
            )
    keys = ivr.keys or {}
    if question.kind is QuestionKind.COUNT:
        if ivr.max_digits is None or keys:
            problems.append(
                doc.problem(
                    (*base, "ivr"),
                    "a count is keyed in as digits: give `max_digits` and no `keys`",
                    question.id,
                )
            )
        return problems
    if not keys or ivr.max_digits is not None:
        problems.append(
            doc.problem(
                (*base, "ivr"), "give `keys` (and no `max_digits`) for this question", question.id
            )
        )
        return problems
    keys_path = (*base, "ivr", "keys")
    seen: dict[object, str] = {}
    for key, value in keys.items():
        here = (*keys_path, key)
        if key not in IVR_KEYS:
            problems.append(
                doc.problem(here, "an IVR key is one digit 0-9 ('*' and '#' are reserved)", key)
            )
        if not _possible(question, value):
            problems.append(
                doc.problem(here, "not an answer this question can have", scalar_text(value))
            )
            continue
        choice = question.choice(value) if isinstance(value, str) else None
        if choice is not None and choice.other:
            problems.append(
                doc.problem(here, "the IVR cannot take the free text an 'other' choice needs", key)
            )
        marker = (type(value), value)
        if marker in seen:
            problems.append(
                doc.problem(
                    here,
                    f"IVR keys collide: '{seen[marker]}' and '{key}' give the same answer",
                    scalar_text(value),
                )
            )
        else:
            seen[marker] = key
        for lang in ("zh", "en"):
            prompt = getattr(ivr.prompt, lang)
            if key not in prompt:
                problems.append(
                    doc.problem(
                        (*base, "ivr", "prompt", lang),
                        f"the IVR prompt never says key '{key}'",
                        prompt,
                    )
                )
    for value in _all_answers(question):
        if (type(value), value) not in seen:
            problems.append(
                doc.problem(keys_path, "no IVR key gives the answer", scalar_text(value))
            )
    return problems


def _choice_problems(doc: LocatedDocument, index: int, question: Question) -> list[Problem]:
    path: PathKey = ("questions", index, "choices")
    if question.kind is not QuestionKind.CHOICE:
        if question.choices:
            return [doc.problem(path, f"a {question.kind} question has no choices", question.id)]
        return []
    problems = []
    if len([c for c in question.choices if not c.other]) < 2:
        problems.append(
            doc.problem(path, "a choice question needs two choices or more", question.id)
        )
    if len([c for c in question.choices if c.other]) > 1:
        problems.append(doc.problem(path, "at most one choice is 'other'", question.id))
    seen: set[str] = set()
    for i, choice in enumerate(question.choices):
        if choice.value in seen:
            problems.append(doc.problem((*path, i, "value"), "duplicate choice", choice.value))
        seen.add(choice.value)
    return problems


def _satisfaction_problems(doc: LocatedDocument, definition: ScriptDefinition) -> list[Problem]:
    marker = definition.satisfaction
    if marker is None:
        return []
    found = [q for q in definition.questions if q.id == marker.question]
    if not found:
        return [doc.problem(("satisfaction", "question"), "no such question", marker.question)]
    question = found[0]
    problems = [
        doc.problem(
            ("satisfaction", "dissatisfied"), "not an answer of the question", scalar_text(v)
        )
        for v in marker.dissatisfied
        if not _possible(question, v)
    ]
    if question.kind not in (QuestionKind.YES_NO, QuestionKind.RATING, QuestionKind.CHOICE):
        problems.append(
            doc.problem(
                ("satisfaction", "question"),
                "satisfaction is read from a yes/no, rating or choice question",
                question.id,
            )
        )
    if not question.required or question.when is not None:
        problems.append(
            doc.problem(
                ("satisfaction", "question"),
                "the satisfaction question must be required and always asked (rule KPI-2)",
                question.id,
            )
        )
    if definition.ivr_questions and (question.agent_only or question.ivr is None):
        problems.append(
            doc.problem(
                ("satisfaction", "question"),
                "the IVR asks this script, so it must ask the satisfaction question too",
                question.id,
            )
        )
    return problems


def definition_problems(doc: LocatedDocument, definition: ScriptDefinition) -> list[Problem]:
    """The checks that need the whole script: ids, choices, conditions, IVR, satisfaction."""
    problems = []
    seen: set[str] = set()
    for index, question in enumerate(definition.questions):
        if question.id in seen:
            problems.append(
                doc.problem(("questions", index, "id"), "duplicate question id", question.id)
            )
        seen.add(question.id)
        problems += _choice_problems(doc, index, question)
        if question.when is not None:
            problems += _condition_problems(doc, definition, index, question.when)
        problems += _ivr_problems(doc, definition, index, question)
    problems += _satisfaction_problems(doc, definition)
    return problems


def phrasebook_problems(doc: LocatedDocument, book: PhraseBook) -> list[Problem]:
    """The frames name phrases that exist; the apology for lateness is among the openings."""
    problems = []
    known = set(book.standard) | {PURPOSE}
    if PURPOSE in book.standard:
        problems.append(
            doc.problem(("standard", PURPOSE), "'purpose' is each script's own; remove it", PURPOSE)
        )
    for frame in ("required", "ivr"):
        for section in ("opening", "closing"):
            for i, name in enumerate(getattr(getattr(book, frame), section)):
                if name not in known:
                    problems.append(
                        doc.problem((frame, section, i), "unknown standard phrase", name)
                    )
    return problems
