"""The audit trail's guarantees (rule SV-4), on SQLite and PostgreSQL: rows are written with
their action's transaction or not at all; no role can change or remove one (triggers), and
the application's role in production is not even granted to; the configuration in force is
recorded when it changes; the IVR's outcomes are recorded as the machine's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from callcenter.audit import service as audit
from callcenter.audit.grants import GrantError, grant_app_role
from callcenter.audit.models import AUDIT_TABLE
from callcenter.audit.rules import IVR, Actor, AuditAction, SubjectType, system_actor
from callcenter.audit.service import effective_configuration, record_configuration
from callcenter.callbacks.service import claim_next, ingest_events
from callcenter.cli import app as cli
from callcenter.clock import FixedClock
from callcenter.config import RulesConfig, Settings
from callcenter.db import Database
from callcenter.users.models import UserRole
from callcenter.users.service import create_user
from tests.conftest import IN_WINDOW, PG_URL, Users, make_database
from tests.factories import event, hours
from tests.integration.test_ivr_calls import Centre, centre, twilio  # noqa: F401

ACTOR = Actor(user_id=None, username="tester", role="admin", address="10.1.2.3")


def rows(database: Database) -> list[dict[str, Any]]:
    with database.engine.connect() as connection:
        found = connection.execute(sa.select(AUDIT_TABLE).order_by(AUDIT_TABLE.c.id)).mappings()
        return [dict(row) for row in found]


def append_one(database: Database, subject_id: str = "C-1") -> None:
    with database.uow() as uow:
        audit.record(
            uow.session,
            actor=ACTOR,
            action=AuditAction.PHONE_VIEWED,
            subject_type=SubjectType.CUSTOMER,
            subject_id=subject_id,
            now=IN_WINDOW,
            detail={"via": "test"},
        )
        uow.commit()


# -- with the action or not at all ------------------------------------------------------------


def test_rows_are_written_when_the_transaction_commits_and_never_without_it(
    database: Database,
) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), database.uow() as uow:
        audit.record(
            uow.session,
            actor=ACTOR,
            action=AuditAction.LEASE_RELEASED,
            subject_type=SubjectType.CALLBACK,
            subject_id=1,
            now=IN_WINDOW,
        )
        raise Boom  # the action failed after recording: nothing is written
    with database.uow() as uow:
        audit.record(
            uow.session,
            actor=ACTOR,
            action=AuditAction.LEASE_RELEASED,
            subject_type=SubjectType.CALLBACK,
            subject_id=2,
            now=IN_WINDOW,
        )
        uow.rollback()  # rolled back explicitly, then the unit commits something else
        uow.commit()
    assert rows(database) == []
    with database.uow() as uow:
        for subject in ("3", "4"):  # two actions in one transaction: one INSERT, two rows
            audit.record(
                uow.session,
                actor=ACTOR,
                action=AuditAction.LEASE_RELEASED,
                subject_type=SubjectType.CALLBACK,
                subject_id=subject,
                now=IN_WINDOW,
            )
        uow.commit()
    written = rows(database)
    assert [(r["subject_id"], r["address"], r["actor_username"]) for r in written] == [
        ("3", "10.1.2.3", "tester"),
        ("4", "10.1.2.3", "tester"),
    ]
    assert written[0]["at"] == IN_WINDOW and written[0]["actor_user_id"] is None


def test_a_claim_the_caller_does_not_show_records_no_view(
    database: Database, clock: FixedClock, users: Users
) -> None:
    config = RulesConfig()
    ingest_events(
        database.uow(),
        events=[event(occurred_at=IN_WINDOW - hours(1)) for _ in range(2)],
        now=clock.now(),
        config=config,
    )
    agent = users.user("agent1")
    hidden = claim_next(
        database.uow(), agent=agent, now=clock.now(), config=config, phone_shown=False
    )
    assert hidden is not None and rows(database) == []
    other = users.user("agent2")
    shown = claim_next(database.uow(), agent=other, now=clock.now(), config=config)
    assert shown is not None
    (row,) = rows(database)
    # Called without an actor (jobs, tests): the agent, without an address.
    assert (row["action"], row["actor_user_id"], row["address"]) == (
        "phone_viewed",
        other.id,
        None,
    )
    assert row["subject_id"] == shown.customer.id


# -- append-only ------------------------------------------------------------------------------


def refused(database: Database, statement: str) -> str:
    with pytest.raises(sa.exc.DBAPIError) as caught, database.engine.begin() as connection:
        connection.execute(sa.text(statement))
    return str(caught.value)


def test_no_one_updates_or_deletes_an_audit_row(database: Database) -> None:
    append_one(database)
    assert "append-only" in refused(database, "UPDATE audit_events SET subject_id = 'C-2'")
    assert "append-only" in refused(database, "DELETE FROM audit_events")
    if database.engine.dialect.name == "postgresql":
        assert "append-only" in refused(database, "TRUNCATE audit_events")
    (row,) = rows(database)
    assert row["subject_id"] == "C-1"
    # Appending still works.
    append_one(database, "C-3")
    assert [r["subject_id"] for r in rows(database)] == ["C-1", "C-3"]


@pytest.fixture
def pg_database(tmp_path: Any) -> Iterator[Database]:
    if not PG_URL:
        pytest.skip("CALLCENTER_TEST_PG_URL is not set")
    database, drop = make_database("postgresql", tmp_path)
    try:
        yield database
    finally:
        drop()


@pytest.fixture
def app_role() -> Iterator[str]:
    """A throwaway login role like production's application role; dropped afterwards."""
    assert PG_URL is not None
    role = f"cc_app_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
    try:
        yield role
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP OWNED BY "{role}"'))
            connection.execute(sa.text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_the_application_role_may_read_and_append_but_not_change_the_trail(
    pg_database: Database, app_role: str
) -> None:
    owner = pg_database
    agent = create_user(owner.uow(), username="agent1", role=UserRole.AGENT, now=IN_WINDOW)
    granted = grant_app_role(owner.engine, app_role)
    assert any("REVOKE UPDATE, DELETE, TRUNCATE" in s and "audit_events" in s for s in granted)
    # Connect as the application would: its own login role, in the tests' schema.
    with owner.engine.connect() as connection:
        current = connection.execute(sa.text("SELECT current_schema()")).scalar_one()
    url = owner.engine.url.set(username=app_role, password=None)
    as_app = Database(
        url.render_as_string(hide_password=False),
        connect_args={"options": f"-csearch_path={current}"},
    )
    try:
        with as_app.uow() as uow:
            audit.record(
                uow.session,
                actor=Actor.of(agent, "10.0.0.7"),
                action=AuditAction.PHONE_VIEWED,
                subject_type=SubjectType.CUSTOMER,
                subject_id="C-APP",
                now=IN_WINDOW,
            )
            uow.commit()
        for statement in (
            "UPDATE audit_events SET subject_id = 'C-OTHER'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
        ):
            message = refused(as_app, statement)
            assert "permission denied" in message, message
        # The business tables stay writable for it: it is the application's role.
        with as_app.engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE users SET display_name = 'Agent One' WHERE id = :id"),
                {"id": agent.id},
            )
        with as_app.engine.connect() as connection:
            seen = connection.execute(sa.text("SELECT subject_id FROM audit_events")).scalars()
            assert list(seen) == ["C-APP"]
    finally:
        as_app.dispose()
    # The owner, who holds every privilege, is stopped by the triggers.
    for statement in ("UPDATE audit_events SET address = NULL", "DELETE FROM audit_events"):
        assert "append-only" in refused(owner, statement)
    (row,) = rows(owner)
    assert (row["subject_id"], row["address"], row["actor_user_id"]) == (
        "C-APP",
        "10.0.0.7",
        agent.id,
    )


def test_granting_needs_postgresql_and_an_existing_role(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database.engine.dialect.name == "sqlite":
        with pytest.raises(GrantError, match="only PostgreSQL"):
            grant_app_role(database.engine, "cc_app")
        monkeypatch.setenv("CALLCENTER_DATABASE_URL", database.url)
        result = CliRunner().invoke(cli, ["db", "grant-app", "cc_app"])
        assert result.exit_code == 1 and "only PostgreSQL" in result.output
        return
    with pytest.raises(GrantError, match="no role"):
        grant_app_role(database.engine, f"missing_{uuid.uuid4().hex[:8]}")
    with database.engine.connect() as connection:
        me = connection.execute(sa.text("SELECT current_user")).scalar_one()
    with pytest.raises(GrantError, match="role of its own"):
        grant_app_role(database.engine, me)


# -- configuration ----------------------------------------------------------------------------


def test_the_configuration_is_recorded_when_it_changes(database: Database) -> None:
    settings = Settings(database_url=database.url, scheduler_enabled=False)
    api = system_actor("api")
    assert record_configuration(database.uow(), settings=settings, actor=api, now=IN_WINDOW)
    (first,) = rows(database)
    assert (first["action"], first["actor_username"], first["actor_role"]) == (
        "config_changed",
        "api",
        "system",
    )
    assert first["detail"]["first"] is True and first["detail"]["changes"] == {}
    assert first["detail"]["effective"]["rules.attempts.max_attempts"] == 3
    # The same configuration again (another process, a restart): nothing new.
    later = IN_WINDOW + hours(1)
    scheduler = system_actor("scheduler")
    assert not record_configuration(database.uow(), settings=settings, actor=scheduler, now=later)
    assert len(rows(database)) == 1

    changed = Settings(
        database_url=database.url,
        rules={"attempts": {"max_attempts": 4}, "sla": {"at_risk_share": 0.5}},
        telephony={
            "auth_token": "s3cr3t-token-value",
            "account_sid": "AC123",
            "from_number": "+8659100",
        },
    )
    assert record_configuration(database.uow(), settings=changed, actor=scheduler, now=later)
    second = rows(database)[1]
    assert second["actor_username"] == "scheduler" and second["at"] == later
    changes = second["detail"]["changes"]
    assert changes["rules.attempts.max_attempts"] == {"old": 3, "new": 4}
    assert changes["rules.sla.at_risk_share"] == {"old": 0.75, "new": 0.5}
    assert changes["telephony.from_number"] == {"old": None, "new": "+8659100"}
    assert "s3cr3t" not in str(second["detail"]) and "AC123" not in str(second["detail"])
    assert second["subject_id"] == second["detail"]["fingerprint"][:16]
    # Back to the first configuration: a change again, compared with the one before.
    assert record_configuration(database.uow(), settings=settings, actor=api, now=later)
    back = rows(database)[2]["detail"]["changes"]
    assert back["rules.attempts.max_attempts"] == {"old": 4, "new": 3}


def test_the_effective_configuration_holds_no_secret() -> None:
    settings = Settings(
        database_url="postgresql+psycopg://cc:db-password-123@db/cc",
        telephony={"auth_token": "tok-abcdef", "account_sid": "AC999", "from_number": "+86591"},
    )
    flat = effective_configuration(settings)
    text = str(flat)
    assert "db-password-123" not in text and "tok-abcdef" not in text and "AC999" not in text
    assert flat["console.max_failed_logins"] == 5 and "rules.windows" in flat


def test_the_api_records_its_configuration_at_start_up(
    database: Database, clock: FixedClock
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = Settings(database_url=database.url, scheduler_enabled=False)
    for _ in range(2):  # started twice with the same configuration: one row
        app = create_app(settings, database=database, clock=clock, start_scheduler=False)
        with TestClient(app):
            pass
    assert [(r["action"], r["actor_username"]) for r in rows(database)] == [
        ("config_changed", "api")
    ]


# -- the IVR ----------------------------------------------------------------------------------


def test_an_ivr_outcome_is_recorded_as_the_machines(centre: Centre) -> None:  # noqa: F811
    callback_id = centre.intake()
    centre.dial()
    before = len(rows(centre.database))
    centre.answer(["1", "1", "1", "5"])
    added = rows(centre.database)[before:]
    (row,) = added
    assert (row["action"], row["subject_type"], row["subject_id"]) == (
        "attempt_recorded",
        "callback",
        str(callback_id),
    )
    assert (row["actor_user_id"], row["actor_username"], row["actor_role"], row["address"]) == (
        IVR.user_id,
        "ivr",
        UserRole.SYSTEM.value,
        None,
    )
    detail = row["detail"]
    assert detail["outcome"] == "answered" and detail["channel"] == "ivr"
    assert sorted(detail["questions"]) == [
        "appointment_kept",
        "conduct_standard",
        "overall",
        "working",
    ]
    (call,) = centre.calls(callback_id)
    (attempt,) = centre.callback(callback_id).attempts
    assert detail["attempts"] == [attempt.id] and detail["ivr_call"] == call.id
