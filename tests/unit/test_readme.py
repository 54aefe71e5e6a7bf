"""The README's examples stay true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callcenter.config import load_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_starts_with_the_two_set_up_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make run", "make test"]


def test_the_rules_file_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = re.search(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert example is not None
    path = tmp_path / "rules.toml"
    path.write_text(example.group(1), encoding="utf-8")
    monkeypatch.setenv("CALLCENTER_RULES_FILE", str(path))
    settings = load_settings()
    assert settings.rules.attempts.max_attempts == 3
    assert settings.rules.types["install"].hard_limit.days == 3
    assert [w.start.isoformat() for w in settings.rules.windows] == ["08:30:00", "14:30:00"]
