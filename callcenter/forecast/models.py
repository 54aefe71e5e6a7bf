"""The roster: how many agents work each calling window of a day, per team."""

from datetime import date, datetime, time

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from callcenter.db import UTCDateTime


class RosterEntry(SQLModel, table=True):
    """Agents rostered for one calling window (rule CB-5) of one day, in the default zone.

    A window is named by its local start time (`08:30`, `14:30`). A row without a team counts
    alongside the rows of the teams: the window's agents are the sum of its rows.
    """

    __tablename__ = "roster"
    __table_args__ = (
        # One row per team and window; the row without a team is unique too (PostgreSQL 15+).
        sa.UniqueConstraint(
            "day",
            "window_start",
            "team",
            name="uq_roster_day_window_team",
            postgresql_nulls_not_distinct=True,
        ),
        sa.CheckConstraint("agents >= 0", name="ck_roster_agents_not_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    day: date
    window_start: time
    agents: int
    team: str | None = Field(default=None, max_length=64)
    updated_by_id: int | None = Field(default=None, foreign_key="users.id")
    updated_at: datetime = Field(sa_type=UTCDateTime)
