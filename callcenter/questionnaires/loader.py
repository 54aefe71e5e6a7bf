"""Load `scripts/`: the standard phrases and one script per callback type, validated.

Loading refuses a broken script with every problem at once, each as `file:line: message:
offending text` (`ScriptError`). The same load is what `callcenter scripts lint` runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from callcenter.config import CallbackType, project_path
from callcenter.questionnaires import lint
from callcenter.questionnaires.definitions import PURPOSE, PhraseBook, ScriptDefinition
from callcenter.questionnaires.source import (
    LocatedDocument,
    PathKey,
    Problem,
    ScriptError,
    parse_yaml,
    scalar_text,
    shorten,
)

__all__ = [
    "PHRASES_FILE",
    "Problem",
    "ScriptError",
    "ScriptSet",
    "load_scripts",
    "shipped_scripts",
    "shipped_scripts_dir",
]

PHRASES_FILE = "phrases.yaml"
_FILLED_BY_LOADER = ("ivr_opening", "ivr_closing")
M = TypeVar("M", bound=BaseModel)


def shipped_scripts_dir() -> Path:
    """The top-level `scripts/` folder of the project."""
    return project_path("scripts")


@dataclass(frozen=True)
class ScriptSet:
    """The loaded scripts: the phrase book and one definition per callback type."""

    directory: Path
    phrases: PhraseBook
    scripts: Mapping[CallbackType, ScriptDefinition]

    def for_type(self, kind: CallbackType) -> ScriptDefinition:
        return self.scripts[kind]

    def __len__(self) -> int:
        return len(self.scripts)


def load_scripts(directory: Path | None = None) -> ScriptSet:
    """Load and check every script in `directory` (default: the shipped ones).

    Raises `ScriptError` listing every problem found in any file.
    """
    directory = shipped_scripts_dir() if directory is None else directory
    if not directory.is_dir():
        raise ScriptError([Problem(directory, 1, "not a directory")])
    problems: list[Problem] = []
    book = _load_phrases(directory / PHRASES_FILE, problems)
    scripts: dict[CallbackType, ScriptDefinition] = {}
    files: dict[CallbackType, Path] = {}
    ids: dict[str, Path] = {}
    for file in sorted(directory.glob("*.yml")):
        problems.append(Problem(file, 1, "script files end in .yaml", file.name))
    for file in sorted(directory.glob("*.yaml")):
        if file.name == PHRASES_FILE:
            continue
        doc = parse_yaml(file)
        definition = _load_script(doc, book, problems)
        if definition is None:
            continue
        if definition.type in files:
            first = files[definition.type]
            problems.append(
                doc.problem(
                    ("type",), f"a second script for this type (first: {first})", definition.type
                )
            )
            continue
        if definition.id in ids:
            problems.append(
                doc.problem(
                    ("id",), f"script id already used by {ids[definition.id]}", definition.id
                )
            )
            continue
        files[definition.type] = file
        ids[definition.id] = file
        scripts[definition.type] = definition
    if book is not None:
        for template in sorted(
            p for p in directory.rglob("*") if p.suffix in lint.TEMPLATE_SUFFIXES
        ):
            problems += lint.template_file_problems(template, book)
    for kind in CallbackType:
        if kind not in files and not _has_file_problems(problems, directory / f"{kind}.yaml"):
            problems.append(
                Problem(directory / f"{kind}.yaml", 1, "no script for this callback type", kind)
            )
    if problems or book is None:
        raise ScriptError(problems)
    return ScriptSet(directory=directory, phrases=book, scripts=scripts)


@lru_cache(maxsize=1)
def shipped_scripts() -> ScriptSet:
    """The shipped scripts, loaded once per process (at start-up, so a broken one stops it)."""
    return load_scripts()


def _has_file_problems(problems: list[Problem], file: Path) -> bool:
    return any(p.file == file for p in problems)


def _load_phrases(file: Path, problems: list[Problem]) -> PhraseBook | None:
    if not file.is_file():
        problems.append(Problem(file, 1, "the standard phrases are missing", file.name))
        return None
    doc = parse_yaml(file)
    problems += doc.problems
    if doc.data is None:
        return None
    book = _validate(PhraseBook, doc, doc.data, problems)
    if book is None:
        return None
    problems += lint.phrasebook_problems(doc, book)
    problems += lint.forbidden_problems(doc, book, skip=lint.PHRASE_LISTS)
    ivr_phrases = set(book.ivr.opening) | set(book.ivr.closing)
    problems += lint.template_problems(
        doc,
        is_ivr=lambda path: len(path) > 1 and path[1] in ivr_phrases,
        skip=lint.PHRASE_LISTS,
    )
    return book


def _is_ivr_text(path: PathKey) -> bool:
    # The IVR speaks the prompts and the purpose; everything else is for agents.
    return "ivr" in path or path[:1] == (PURPOSE,)


def _load_script(
    doc: LocatedDocument, book: PhraseBook | None, problems: list[Problem]
) -> ScriptDefinition | None:
    problems += doc.problems
    if doc.data is None:
        return None
    if not isinstance(doc.data, dict):
        problems.append(doc.problem((), "a script is a mapping of keys", shorten(str(doc.data))))
        return None
    if book is None:  # without the phrase book a script can be neither resolved nor checked
        return None
    found = lint.forbidden_problems(doc, book)
    found += lint.frame_problems(doc, book)
    found += lint.template_problems(doc, is_ivr=_is_ivr_text)
    for key in _FILLED_BY_LOADER:
        if key in doc.data:
            found.append(doc.problem((key,), "comes from phrases.yaml; remove it", key))
    problems += found
    resolved = _resolve(doc.data, book)
    if resolved is None:  # an unknown phrase, reported above: there is nothing to check further
        return None
    definition = _validate(ScriptDefinition, doc, resolved, problems)
    if definition is None:
        return None
    semantic = lint.definition_problems(doc, definition)
    problems += semantic
    return None if semantic else definition


def _resolve(data: dict[str, Any], book: PhraseBook) -> dict[str, Any] | None:
    """Replace references to standard phrases by the phrases themselves (rule SV-1).

    None when a reference names no phrase or comes with text of its own.
    """

    def part(item: Any) -> Any:
        if not isinstance(item, dict) or "phrase" not in item:
            return item
        name = item["phrase"]
        if name == PURPOSE:
            return {"phrase": PURPOSE, "text": data.get(PURPOSE)}
        return {"phrase": name, **book.standard[name].model_dump()}

    def parts(names: tuple[str, ...]) -> list[Any]:
        return [part({"phrase": name}) for name in names]

    resolved = dict(data)
    for section in ("opening", "closing"):
        items = data.get(section)
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, dict) and "phrase" in item:
                if lint.reference_problem(item, book) is not None:
                    return None
        resolved[section] = [part(item) for item in items]
    questions = data.get("questions")
    asks_by_ivr = isinstance(questions, list) and any(
        isinstance(q, dict) and q.get("ivr") is not None and not q.get("agent_only")
        for q in questions
    )
    if asks_by_ivr:
        resolved["ivr_opening"] = parts(book.ivr.opening)
        resolved["ivr_closing"] = parts(book.ivr.closing)
    return resolved


def _validate(model: type[M], doc: LocatedDocument, data: Any, problems: list[Problem]) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems += _validation_problems(doc, exc)
        return None


def _validation_problems(doc: LocatedDocument, exc: ValidationError) -> list[Problem]:
    problems = []
    seen: set[tuple[int, str]] = set()
    for error in exc.errors():
        path = tuple(error["loc"])
        name = path[-1] if path else ""
        if error["type"] == "missing":
            if name == "en":
                message = "missing English translation (en)"
            elif name == "zh":
                message = "missing Chinese text (zh)"
            else:
                message = f"missing `{name}`"
            # the text beside the missing one, e.g. the Chinese that has no translation
            parent = doc.get(path[:-1])
            siblings = parent.values() if isinstance(parent, dict) else ()
            text = next((v for v in siblings if isinstance(v, str)), "")
        elif error["type"] == "extra_forbidden":
            message, text = "unknown key", str(name)
        else:
            message = f"{'.'.join(str(p) for p in path)}: {error['msg']}"
            value = error.get("input")
            text = scalar_text(value)
        line = doc.line_of(path)
        if (line, message) in seen:
            continue
        seen.add((line, message))
        problems.append(Problem(doc.file, line, message, shorten(text)))
    return problems
