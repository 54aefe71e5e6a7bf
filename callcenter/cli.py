"""The `callcenter` command. It is the composition root: it reads the settings and starts the
API (uvicorn) or the scheduler; the domain modules never import either."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from callcenter.clock import SystemClock, make_clock
from callcenter.config import Environment, Settings, SettingsError, load_settings, project_path
from callcenter.db import Database
from callcenter.errors import DomainError
from callcenter.questionnaires.cli import scripts_app
from callcenter.users.models import UserRole

app = typer.Typer(
    help="The 10050 callback centre. Every command reads CALLCENTER_DATABASE_URL "
    "(default: SQLite ./callcenter.db).",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data for trying the product.", no_args_is_help=True)
users_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for integrations and agents.", no_args_is_help=True)
dnc_app = typer.Typer(help="The do-not-call list.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(dnc_app, name="dnc")
app.add_typer(scripts_app, name="scripts")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"callcenter: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise _fail(str(exc), 2) from exc


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        force=True,
    )


def _database(settings: Settings) -> Database:
    return Database(settings.database_url)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Do not run the scheduler in this process.")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="API worker processes.")] = 1,
) -> None:
    """Serve the API and console with uvicorn (and the scheduler, unless --no-scheduler)."""
    _configure_logging(_settings())  # and fail early, with a readable message, on a bad setting
    import uvicorn

    if no_scheduler:
        os.environ["CALLCENTER_SCHEDULER_ENABLED"] = "false"
    uvicorn.run(
        "api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
    )


@app.command("scheduler")
def run_scheduler() -> None:
    """Run the scheduler on its own (production: one or more of these beside the API)."""
    settings = _settings()
    _configure_logging(settings)
    from apscheduler.schedulers.blocking import BlockingScheduler

    from scheduler.runner import build_scheduler

    scheduler = build_scheduler(
        database=_database(settings),
        clock=make_clock(settings),
        settings=settings,
        scheduler=BlockingScheduler(timezone="UTC"),
    )
    typer.echo("scheduler running; Ctrl-C stops it")
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass


def upgrade_database(url: str) -> None:
    from alembic.config import Config

    from alembic import command

    config = Config(str(project_path("alembic.ini")))
    config.set_main_option("script_location", str(project_path("alembic")))
    config.attributes["url"] = url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    settings = _settings()
    try:
        upgrade_database(settings.database_url)
    except Exception as exc:  # a migration error must reach the operator whole
        raise _fail(f"migration failed: {exc}") from exc
    typer.echo("database is up to date")


@demo_app.command("load")
def demo_load(
    callbacks_per_type: Annotated[
        int, typer.Option(min=1, max=5000, help="Events of each type to create.")
    ] = 60,
) -> None:
    """Load demo users (one of each role, passwords printed) and callbacks of every type."""
    settings = _settings()
    if settings.environment is Environment.PRODUCTION:
        raise _fail("demo data is not loaded in production")
    from callcenter.demo import load_demo
    from callcenter.questionnaires.loader import load_scripts

    report = load_demo(
        _database(settings),
        now=SystemClock().now(),
        config=settings.rules,
        per_type=callbacks_per_type,
        scripts=load_scripts(settings.scripts_dir),
    )
    typer.echo(report)


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="The username.")],
    role: Annotated[UserRole, typer.Option(help="What the user may do.")],
    password: Annotated[
        str | None,
        typer.Option(help="Password for the console (at least 8 characters)."),
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="Name shown to others.")] = None,
    employee_number: Annotated[
        str | None, typer.Option(help="Employee number (工号), said on every call.")
    ] = None,
) -> None:
    """Create a user with a role."""
    from callcenter.users.service import create_user

    settings = _settings()
    try:
        user = create_user(
            _database(settings).uow(),
            username=name,
            role=role,
            now=SystemClock().now(),
            password=password,
            display_name=display_name,
            employee_number=employee_number,
        )
    except DomainError as exc:
        raise _fail(exc.message) from exc
    typer.echo(f"created user {user.username} ({user.role})")


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option("--user", help="The user the token acts as.")],
) -> None:
    """Create an API token; it is printed once and stored only as a hash."""
    from callcenter.users.service import create_token

    settings = _settings()
    try:
        token = create_token(_database(settings).uow(), username=user, now=SystemClock().now())
    except DomainError as exc:
        raise _fail(exc.message) from exc
    typer.echo(token)
    typer.echo("Keep it now: it cannot be shown again.", err=True)


@dnc_app.command("import")
def dnc_import(
    file: Annotated[
        Path, typer.Argument(help="CSV: phone[,reason] per line; '#' starts a comment.")
    ],
) -> None:
    """Put the numbers of a file on the do-not-call list (all or nothing)."""
    from callcenter.customers.models import DoNotCallSource
    from callcenter.customers.service import ListFileError, add_to_list, read_list_file

    settings = _settings()
    try:
        lines = read_list_file(file, settings.rules.default_phone_region)
    except ListFileError as exc:
        for problem in exc.problems:
            typer.secho(problem, err=True, fg=typer.colors.RED)
        raise _fail(f"nothing imported: {len(exc.problems)} bad line(s)") from exc
    added = add_to_list(
        _database(settings).uow(),
        lines=lines,
        source=DoNotCallSource.OPERATOR_IMPORT,
        now=SystemClock().now(),
    )
    typer.echo(f"{added} number(s) added; {len(lines) - added} already on the list")


def main() -> None:
    try:
        app()
    except SettingsError as exc:  # pragma: no cover - reached only outside typer's handling
        typer.secho(f"callcenter: {exc}", err=True)
        sys.exit(2)
