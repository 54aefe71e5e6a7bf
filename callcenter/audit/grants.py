"""The production role split (rule SV-4): migrations run as the owner of the tables; the
application connects as a role that may read and write the business tables but may only
read and append to the audit trail. The triggers refuse changes to audit rows for every
role; the missing privileges make the refusal hold even if a trigger were dropped."""

from __future__ import annotations

import sqlalchemy as sa


class GrantError(Exception):
    """The grants cannot be given; the message says why."""


def app_role_statements(role: str, schema: str) -> list[str]:
    """The GRANT and REVOKE statements for `role` on `schema` (both already quoted)."""
    return [
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        # Append-only: the trail is read and appended to, never changed or emptied.
        f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {schema}.audit_events "
        f"FROM {role}",
        # The schema's version is the migrations' business (run as the owner).
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {schema}.alembic_version FROM {role}",
    ]


def grant_app_role(engine: sa.Engine, role: str) -> list[str]:
    """Give `role` (an existing PostgreSQL role, not the one connected) the application's
    privileges on the tables of the current schema; the statements run, in order. Run it as
    the owner after every migration: a new table is granted only then."""
    if engine.dialect.name != "postgresql":
        raise GrantError(
            "only PostgreSQL has roles; on SQLite the triggers alone keep audit rows unchanged"
        )
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as connection:
        exists = connection.execute(
            sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
        ).first()
        if exists is None:
            raise GrantError(f"there is no role {role!r}: create it first (CREATE ROLE … LOGIN)")
        me = connection.execute(sa.text("SELECT current_user")).scalar_one()
        if me == role:
            raise GrantError(
                f"{role!r} is the role connected now: the application needs a role of its own"
            )
        schema = connection.execute(sa.text("SELECT current_schema()")).scalar_one()
        if schema is None:
            raise GrantError("no current schema: set the search_path of the connection")
        tables = set(sa.inspect(connection).get_table_names(schema=schema))
        if "audit_events" not in tables:
            raise GrantError("the schema has no audit_events table: run `callcenter db upgrade`")
        statements = app_role_statements(quote(role), quote(schema))
        if "alembic_version" not in tables:
            statements = [s for s in statements if "alembic_version" not in s]
        for statement in statements:
            connection.exec_driver_sql(statement)
    return statements
