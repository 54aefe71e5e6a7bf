"""Customers as the order system knows them, the do-not-call list, and the zones in use."""

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from callcenter.db import UTCDateTime, enum_type


class CustomerTitle(StrEnum):
    """How the customer is addressed: 先生 / 女士 after the family name (rule SV-1)."""

    MR = "mr"
    MS = "ms"


class Customer(SQLModel, table=True):
    __tablename__ = "customers"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200)
    title: CustomerTitle | None = Field(default=None, sa_type=enum_type(CustomerTitle))
    phone: str = Field(max_length=20, index=True)  # E.164
    timezone: str = Field(max_length=64)
    region: str | None = Field(default=None, max_length=64)
    # The customer's details are taken from the newest event; an older event delivered late
    # does not overwrite them.
    info_as_of: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)


class DoNotCallSource(StrEnum):
    CUSTOMER_REQUEST = "customer_request"
    OPERATOR_IMPORT = "operator_import"


class DoNotCall(SQLModel, table=True):
    """A phone number never to be called (checked when a callback is claimed)."""

    __tablename__ = "do_not_call"

    phone: str = Field(max_length=20, primary_key=True)  # E.164
    source: DoNotCallSource = Field(sa_type=enum_type(DoNotCallSource))
    reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int | None = Field(default=None, foreign_key="users.id")


class KnownZone(SQLModel, table=True):
    """Every time zone a customer lives in: the claim asks which of them are in a window."""

    __tablename__ = "known_zones"

    name: str = Field(max_length=64, primary_key=True)
