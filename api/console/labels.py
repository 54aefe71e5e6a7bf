"""What the console calls each state, type and outcome (English ids; the catalogue
translates them where they are shown)."""

from __future__ import annotations

from api.console.i18n import gettext_noop as N_

TYPES = {
    "install": N_("Installation"),
    "repair": N_("Repair"),
    "complaint": N_("Complaint"),
    "churn": N_("Cancellation"),
    "install_delay": N_("Installation delayed"),
    "fault_delay": N_("Fault not restored"),
    "complaint_contact": N_("Complaint received"),
    "win_back": N_("Win-back"),
}

# What happened, as the agent reads it on the desk.
EVENTS = {
    "install": N_("Installation completed"),
    "repair": N_("Repair replied"),
    "complaint": N_("Complaint replied"),
    "churn": N_("Service cancelled"),
    "install_delay": N_("Installation accepted, not completed in 4 days"),
    "fault_delay": N_("Fault accepted, not restored in 4 hours"),
    "complaint_contact": N_("Complaint accepted"),
    "win_back": N_("Customer said they might come back"),
}

STATUSES = {
    "pending": N_("Waiting"),
    "claimed": N_("In a call"),
    "completed": N_("Completed"),
    "failed": N_("Failed"),
    "expired": N_("Expired"),
    "cancelled": N_("Cancelled"),
}

OUTCOMES = {
    "answered": N_("Answered"),
    "no_answer": N_("No answer"),
    "busy": N_("Busy"),
    "wrong_number": N_("Wrong number"),
    "refused": N_("Refused"),
    "call_back_later": N_("Call back later"),
    "do_not_call": N_("Do not call again"),
}

ROLES = {
    "agent": N_("Agent"),
    "supervisor": N_("Supervisor"),
    "retention_lead": N_("Retention lead"),
    "manager": N_("Manager"),
    "admin": N_("Administrator"),
    "system": N_("Integration"),
}

CHANNELS = {"agent": N_("Agent"), "ivr": N_("IVR")}

TITLES = {"mr": N_("Mr"), "ms": N_("Ms")}

WORK_ORDER_KINDS = {"follow_up": N_("Follow-up"), "urging": N_("Urging order")}

# The three-level retention flow (rules CB-6, RT-1..RT-4).
CASE_STATES = {"open": N_("Open"), "retained": N_("Retained"), "lost": N_("Lost")}

STEP_OUTCOMES = {
    "retained": N_("Retained"),
    "escalated": N_("Escalated"),
    "lost": N_("Lost"),
}

# Who acts at each level (rules RT-1..RT-3).
LEVEL_ROLES = {1: N_("agent"), 2: N_("supervisor"), 3: N_("retention lead")}

OFFER_KINDS = {
    "discount": N_("Discount"),
    "free_months": N_("Free months"),
    "speed_upgrade": N_("Speed upgrade"),
}

IVR_STATUSES = {
    "queued": N_("Queued"),
    "initiated": N_("Dialling"),
    "ringing": N_("Ringing"),
    "in_progress": N_("In progress"),
    "completed": N_("Ended"),
    "busy": N_("Busy"),
    "no_answer": N_("No answer"),
    "failed": N_("Failed"),
    "canceled": N_("Cancelled"),
    "lost": N_("Lost"),
}

DISPOSITIONS = {
    "completed": N_("Completed"),
    "to_agent": N_("To an agent"),
    "retry": N_("Tried again later"),
    "failed": N_("Failed"),
    "expired": N_("Expired"),
    "unchanged": N_("Closed meanwhile"),
}

# The audit trail's actions and subjects (rule SV-4).
AUDIT_ACTIONS = {
    "phone_viewed": N_("Viewed the full phone number"),
    "attempt_recorded": N_("Recorded a call outcome"),
    "answers_recorded": N_("Recorded answers"),
    "answer_corrected": N_("Corrected an answer"),
    "callback_reassigned": N_("Reassigned a callback"),
    "lease_released": N_("Released a lease"),
    "workorder_created": N_("Raised a work order"),
    "workorder_handed_over": N_("Handed over a work order"),
    "retention_step_recorded": N_("Recorded a retention step"),
    "config_changed": N_("Configuration changed"),
}

AUDIT_SUBJECTS = {
    "customer": N_("Customer"),
    "callback": N_("Callback"),
    "answer": N_("Answer"),
    "work_order": N_("Work order"),
    "retention_case": N_("Retention case"),
    "configuration": N_("Configuration"),
}
