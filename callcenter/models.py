"""Every table, imported in one place so that metadata and migrations see them all."""

from sqlmodel import SQLModel

from callcenter.callbacks.models import Attempt, Callback, CallbackEvent, IntakeEvent
from callcenter.customers.models import Customer, DoNotCall, KnownZone
from callcenter.forecast.models import RosterEntry
from callcenter.questionnaires.models import Answer, ScriptVersion
from callcenter.reports.models import KpiSnapshot
from callcenter.users.models import ApiToken, User
from callcenter.workorders.models import WorkOrder

metadata = SQLModel.metadata

__all__ = [
    "Answer",
    "ApiToken",
    "Attempt",
    "Callback",
    "CallbackEvent",
    "Customer",
    "DoNotCall",
    "IntakeEvent",
    "KpiSnapshot",
    "KnownZone",
    "RosterEntry",
    "User",
    "ScriptVersion",
    "WorkOrder",
    "metadata",
]
