"""Every table, imported in one place so that metadata and migrations see them all."""

from sqlmodel import SQLModel

from callcenter.audit.models import AuditEvent
from callcenter.callbacks.models import Attempt, Callback, CallbackEvent, IntakeEvent
from callcenter.customers.models import Customer, DoNotCall, KnownZone
from callcenter.forecast.models import RosterEntry
from callcenter.ivr.models import IvrCall, IvrCallStep, IvrDialSlot
from callcenter.questionnaires.models import Answer, ScriptVersion
from callcenter.reports.models import ChurnDay, KpiSnapshot, OfferDay, ReportDay, ReportHour
from callcenter.retention.models import RetentionCase, RetentionStep
from callcenter.users.models import ApiToken, LoginFailure, User, WebSession
from callcenter.workorders.models import WorkOrder

metadata = SQLModel.metadata

__all__ = [
    "Answer",
    "ApiToken",
    "Attempt",
    "AuditEvent",
    "Callback",
    "CallbackEvent",
    "ChurnDay",
    "Customer",
    "DoNotCall",
    "IntakeEvent",
    "IvrCall",
    "IvrCallStep",
    "IvrDialSlot",
    "KpiSnapshot",
    "KnownZone",
    "LoginFailure",
    "OfferDay",
    "ReportDay",
    "ReportHour",
    "RetentionCase",
    "RetentionStep",
    "RosterEntry",
    "User",
    "ScriptVersion",
    "WebSession",
    "WorkOrder",
    "metadata",
]
