"""`callcenter scripts ...`: check and preview the call scripts from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from callcenter.config import CallbackType
from callcenter.questionnaires.definitions import Lang
from callcenter.questionnaires.loader import ScriptError, load_scripts, shipped_scripts_dir
from callcenter.questionnaires.render import (
    format_ivr,
    format_script,
    render_ivr,
    render_script,
    sample_context,
)

__all__ = ["scripts_app", "shipped_scripts_dir"]

scripts_app = typer.Typer(
    help="Call scripts and questionnaires (scripts/).",
    no_args_is_help=True,
    add_completion=False,
)

PathArgument = Annotated[
    Path | None,
    typer.Argument(
        help="A scripts directory; default: the shipped scripts.",
        file_okay=False,
        show_default=False,
    ),
]


@scripts_app.callback()
def _scripts() -> None:
    """Call scripts and questionnaires (scripts/)."""


@scripts_app.command("lint")
def lint_command(path: PathArgument = None) -> None:
    """Check the scripts as start-up does; print each problem as file:line and exit 1."""
    directory = shipped_scripts_dir() if path is None else path
    try:
        scripts = load_scripts(directory)
    except ScriptError as exc:
        for problem in exc.problems:
            typer.echo(str(problem))
        typer.echo(f"{len(exc.problems)} problem(s) in {directory}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"OK: {len(scripts)} scripts")


@scripts_app.command("show")
def show_command(
    kind: Annotated[CallbackType, typer.Argument(help="The callback type.")],
    lang: Annotated[Lang, typer.Option("--lang", help="Language.")] = Lang.ZH,
    late: Annotated[bool, typer.Option("--late", help="Render as a late callback.")] = False,
    path: PathArgument = None,
) -> None:
    """Print one script rendered with a sample agent, customer and order."""
    try:
        definition = load_scripts(path).for_type(kind)
    except ScriptError as exc:
        typer.echo(str(exc))
        raise typer.Exit(code=1) from None
    ctx = sample_context(lang, kind, late=late)
    typer.echo(format_script(render_script(definition, ctx, lang)), nl=False)
    if definition.ivr_questions:
        ivr_ctx = ctx.model_copy(update={"agent": None})
        typer.echo("")
        typer.echo(format_ivr(render_ivr(definition, ivr_ctx, lang)), nl=False)


if __name__ == "__main__":
    scripts_app()
