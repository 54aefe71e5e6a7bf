"""`callcenter scripts lint [PATH]` and `callcenter scripts show`."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from callcenter.questionnaires.cli import scripts_app, shipped_scripts_dir

runner = CliRunner()


def test_lint_passes_on_the_shipped_scripts() -> None:
    result = runner.invoke(scripts_app, ["lint"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "OK: 8 scripts"


def test_lint_on_a_good_copy(tmp_path: Path) -> None:
    copy = tmp_path / "scripts"
    shutil.copytree(shipped_scripts_dir(), copy)
    result = runner.invoke(scripts_app, ["lint", str(copy)])
    assert result.exit_code == 0, result.output
    assert "OK: 8 scripts" in result.stdout


def test_lint_fails_with_file_and_line_on_a_broken_copy(tmp_path: Path) -> None:
    copy = tmp_path / "scripts"
    shutil.copytree(shipped_scripts_dir(), copy)
    file = copy / "repair.yaml"
    text = file.read_text(encoding="utf-8")
    file.write_text(text.replace("请问是哪方面做得不到位？", "你有没有搞错？"), encoding="utf-8")
    line = next(
        n for n, row in enumerate(file.read_text(encoding="utf-8").splitlines(), 1) if "搞错" in row
    )
    result = runner.invoke(scripts_app, ["lint", str(copy)])
    assert result.exit_code == 1
    assert f"{file}:{line}: forbidden phrase “你有没有搞错”" in result.stdout
    assert "OK" not in result.stdout
    assert "1 problem(s)" in result.stderr


def test_lint_of_a_missing_directory_fails(tmp_path: Path) -> None:
    result = runner.invoke(scripts_app, ["lint", str(tmp_path / "nowhere")])
    assert result.exit_code != 0


def test_show_prints_a_rendered_script() -> None:
    result = runner.invoke(scripts_app, ["show", "complaint", "--lang", "en", "--late"])
    assert result.exit_code == 0, result.output
    assert "Hello, Mr Wang." in result.stdout
    assert "We are very sorry to have kept you waiting." in result.stdout
    assert "[IVR call]" in result.stdout


def test_help_lists_the_commands() -> None:
    result = runner.invoke(scripts_app, ["--help"])
    assert result.exit_code == 0
    assert "lint" in result.stdout and "show" in result.stdout
