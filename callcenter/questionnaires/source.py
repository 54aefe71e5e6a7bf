"""YAML with line numbers: every node of a script file keeps the line it came from.

The file is composed into YAML nodes with the safe loader and turned into plain data by hand,
recording for each path (`("questions", 2, "ivr", "keys", "1")`) the line of its key or item, and
for each string the span of its source text. A problem found later at any path is thus reported
as `file:line`. Duplicate keys, which YAML would silently drop, are problems here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml when it is there: same nodes and marks, several times faster
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a script file, reported as `file:line: message: offending text`."""

    file: Path
    line: int
    message: str
    text: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: {self.message}"
        return f"{where}: {self.text}" if self.text else where


class ScriptError(Exception):
    """The scripts cannot be used; `problems` lists every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (str(p.file), p.line, p.message)))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Span:
    line: int  # 1-based line where the scalar starts
    start: int  # index of the scalar's source text in the file
    end: int


@dataclass
class LocatedDocument:
    """A YAML file as plain data plus where each piece of it stands in the source."""

    file: Path
    source: str
    data: Any = None
    lines: dict[PathKey, int] = field(default_factory=dict)
    spans: dict[PathKey, Span] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: PathKey) -> int:
        """The line of `path`, or of its nearest ancestor that exists in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1

    def get(self, path: PathKey) -> Any:
        """The value at `path`, or None when there is none."""
        node: Any = self.data
        for key in path:
            if isinstance(node, dict) and isinstance(key, str):
                node = node.get(key)
            elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
                node = node[key]
            else:
                return None
        return node

    def problem(self, path: PathKey, message: str, text: str = "") -> Problem:
        return Problem(self.file, self.line_of(path), message, shorten(text))

    def strings(self) -> Iterator[tuple[PathKey, str]]:
        """Every string value in the document with its path, in source order."""
        for path in self.spans:
            value = self.get(path)
            if isinstance(value, str):
                yield path, value

    def line_in_scalar(self, path: PathKey, fragment: str) -> int:
        """The line where `fragment` of the string at `path` stands in the source."""
        span = self.spans.get(path)
        if span is None:
            return self.line_of(path)
        raw = self.source[span.start : span.end]
        found = raw.find(fragment)
        if found < 0:  # folded or escaped in the source: the scalar's first line will do
            return span.line
        return span.line + raw.count("\n", 0, found)


def scalar_text(value: object) -> str:
    """A scalar as YAML writes it (`false`, `3`, `moving`); other values as nothing."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, str | int | float) else ""


def shorten(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def parse_yaml(file: Path) -> LocatedDocument:
    """Read one YAML file; syntax errors and duplicate keys land in `problems`."""
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        doc = LocatedDocument(file=file, source="")
        doc.problems.append(Problem(file, 1, "cannot read the file", str(exc)))
        return doc
    doc = LocatedDocument(file=file, source=source)
    loader = _Loader(source)
    try:
        root = loader.get_single_node()
        if root is None:
            doc.problems.append(Problem(file, 1, "the file is empty"))
            return doc
        doc.data = _build(loader, root, (), doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        doc.problems.append(Problem(file, line, "invalid YAML", str(exc.problem or exc)))
        doc.data = None
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(file, 1, "invalid YAML", str(exc)))
        doc.data = None
    finally:
        loader.dispose()
    return doc


def _build(loader: _Loader, node: yaml.Node, path: PathKey, doc: LocatedDocument) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<` merge keys as the safe loader would
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(loader.construct_object(key_node, deep=True))
            child = (*path, key)
            if key in result:
                message = (
                    "IVR key mapped twice: the keys collide"
                    if path[-2:] == ("ivr", "keys")
                    else "duplicate key"
                )
                doc.problems.append(Problem(doc.file, key_node.start_mark.line + 1, message, key))
                continue
            doc.lines[child] = key_node.start_mark.line + 1
            result[key] = _build(loader, value_node, child, doc)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), doc) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, str):
        doc.spans[path] = Span(node.start_mark.line + 1, node.start_mark.index, node.end_mark.index)
    return value
