"""Every table, imported in one place so that metadata and migrations see them all."""

from sqlmodel import SQLModel

from callcenter.callbacks.models import Attempt, Callback, IntakeEvent
from callcenter.customers.models import Customer, DoNotCall, KnownZone
from callcenter.users.models import ApiToken, User

metadata = SQLModel.metadata

__all__ = [
    "ApiToken",
    "Attempt",
    "Callback",
    "Customer",
    "DoNotCall",
    "IntakeEvent",
    "KnownZone",
    "User",
    "metadata",
]
