"""The `callcenter` command. It is the composition root: it reads the settings and starts the
API (uvicorn) or the scheduler; the domain modules never import either."""

from __future__ import annotations

import logging
import os
import signal
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
ivr_app = typer.Typer(help="IVR survey calls.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(dnc_app, name="dnc")
app.add_typer(scripts_app, name="scripts")
app.add_typer(ivr_app, name="ivr")


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
        # A worker that loads the app on a busy machine takes longer than uvicorn's default
        # 5 s to answer its first health check, and would be killed and started again.
        timeout_worker_healthcheck=30,
    )


@app.command("scheduler")
def run_scheduler() -> None:
    """Run the scheduler on its own (production: one or more of these beside the API)."""
    settings = _settings()
    _configure_logging(settings)
    from apscheduler.schedulers.blocking import BlockingScheduler

    from callcenter.audit.rules import system_actor
    from callcenter.audit.service import record_configuration
    from scheduler.runner import build_scheduler

    database, clock = _database(settings), make_clock(settings)
    # rule SV-4: a configuration that differs from the last one recorded is audited.
    record_configuration(
        database.uow(), settings=settings, actor=system_actor("scheduler"), now=clock.now()
    )
    scheduler = build_scheduler(
        database=database,
        clock=clock,
        settings=settings,
        scheduler=BlockingScheduler(timezone="UTC"),
    )
    # `docker stop` and process managers send SIGTERM: stop as Ctrl-C does, not mid-job.
    signal.signal(signal.SIGTERM, _stop_on_signal)
    typer.echo("scheduler running; Ctrl-C stops it")
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        # The jobs under way finish before the process exits: a job cut short by the
        # interpreter's exit fails half-way (the IVR dialer could not hand its call over).
        if scheduler.running:
            scheduler.shutdown(wait=True)
        database.dispose()
    typer.echo("scheduler stopped")


def _stop_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


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


@db_app.command("grant-app")
def db_grant_app(
    role: Annotated[str, typer.Argument(help="The existing PostgreSQL role the API connects as.")],
) -> None:
    """Give the application's role its privileges (PostgreSQL; run as the owner after every
    migration): read and write the business tables, only read and append to the audit trail
    (rule SV-4)."""
    from callcenter.audit.grants import GrantError, grant_app_role

    database = _database(_settings())
    try:
        statements = grant_app_role(database.engine, role)
    except GrantError as exc:
        raise _fail(f"grant-app: {exc}") from exc
    finally:
        database.dispose()
    for statement in statements:
        typer.echo(f"{statement};")


@db_app.command("backup")
def db_backup(
    file: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
) -> None:
    """Back up the database while the service runs: SQLite's online backup API, or pg_dump
    (custom format) for PostgreSQL."""
    from callcenter.backup.service import BackupError, backup, row_counts

    settings = _settings()
    try:
        backup(settings.database_url, file)
    except BackupError as exc:
        raise _fail(f"backup failed: {exc}") from exc
    total = sum(row_counts(settings.database_url).values())
    typer.echo(f"backed up {total} rows to {file}")


@db_app.command("restore")
def db_restore(
    file: Annotated[Path, typer.Argument(help="A file `callcenter db backup` wrote.")],
) -> None:
    """Restore a backup into the empty database CALLCENTER_DATABASE_URL names, then print
    the rows of every table to compare with the source."""
    from callcenter.backup.service import BackupError, restore, row_counts

    settings = _settings()
    try:
        restore(settings.database_url, file)
    except BackupError as exc:
        raise _fail(f"restore failed: {exc}") from exc
    for name, count in row_counts(settings.database_url).items():
        typer.echo(f"{name:<24} {count}")


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


def _parse_keys(text: str) -> list[str]:
    from callcenter.telephony.simulator import HANG_UP, NO_INPUT

    keys = []
    for raw in text.split(",") if text.strip() else []:
        key = raw.strip()
        if key in ("", "-"):
            keys.append(NO_INPUT)
        elif key.lower() in ("h", "hangup"):
            keys.append(HANG_UP)
        elif all(c in "0123456789*#" for c in key):
            keys.append(key)
        else:
            raise _fail(f"--keys: {key!r} is not a key (digits, *, #, '-' for none, 'h')", 2)
    return keys


@ivr_app.command("call")
def ivr_call(
    callback_id: Annotated[int, typer.Argument(help="The IVR callback to call.")],
    keys: Annotated[
        str,
        typer.Option(
            help="Keys the customer presses, one per question, comma-separated: 1,1,5 "
            "(a count: 2#; '-': nothing; 'h': hang up). When they run out the customer hangs up."
        ),
    ] = "",
    any_time: Annotated[
        bool, typer.Option("--any-time", help="Call even outside the customer's calling window.")
    ] = False,
) -> None:
    """Play one IVR call with the local simulator: the same webhooks, TwiML and signatures as a
    Twilio call, served by an API started in this process on a free localhost port."""
    import socket
    import threading
    import time

    import uvicorn

    from api.app import create_app
    from callcenter.config import TelephonyProvider
    from callcenter.ivr.service import list_ivr_calls, record_placed, start_call
    from callcenter.telephony.simulator import CallPlayer, Keys, UrllibTransport

    settings = _settings()
    if settings.telephony.provider is not TelephonyProvider.SIMULATOR:
        raise _fail("a Twilio account is configured: IVR calls are placed by the dialer")
    pressed = _parse_keys(keys)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    telephony = settings.telephony.model_copy(
        update={"public_base_url": f"http://127.0.0.1:{port}"}
    )
    settings = settings.model_copy(update={"telephony": telephony, "scheduler_enabled": False})
    database = _database(settings)
    clock = make_clock(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, database=database, clock=clock, start_scheduler=False),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise _fail("the local API did not start")
            time.sleep(0.05)
        try:
            planned = start_call(
                database.uow(),
                callback_id=callback_id,
                now=clock.now(),
                config=settings.rules,
                telephony=telephony,
                provider=TelephonyProvider.SIMULATOR,
                any_time=any_time,
            )
        except DomainError as exc:
            raise _fail(exc.message) from exc
        sid = "CA" + planned.ref.replace("-", "")
        record_placed(database.uow(), ref=planned.ref, sid=sid, now=clock.now())
        player = CallPlayer(UrllibTransport(), telephony.signing_key())
        transcript = player.play(sid, planned.request, Keys(pressed))
        typer.echo(str(transcript))
        call = list_ivr_calls(database.uow(), callback_id=callback_id, limit=1)[0]
        typer.echo(
            f"call {call.ref}: {call.status}, outcome {call.outcome}, "
            f"callback {call.disposition}; {call.note}"
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main() -> None:
    try:
        app()
    except SettingsError as exc:  # pragma: no cover - reached only outside typer's handling
        typer.secho(f"callcenter: {exc}", err=True)
        sys.exit(2)
