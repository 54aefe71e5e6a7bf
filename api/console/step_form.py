"""The form of one retention step (rule RT-4): on the desk with the churn call (level 1, its
fields prefixed `rt.`) and on a case's page (levels 2 and 3). Reads the posted fields into a
`StepCreate`, and says each problem in the page's language."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from api.console import labels
from callcenter.retention.rules import OfferAboveLevel
from callcenter.retention.schemas import StepCreate

DESK_PREFIX = "rt."
FIELDS = (
    "level",
    "outcome",
    "reason_code",
    "reason_text",
    "offer_code",
    "offer_accepted",
    "customer_answer",
    "escalate_to",
    "win_back",
    "win_back_on",
)
YES_NO = {"true": True, "false": False}

Gettext = Callable[[str], str]


def raw_fields(fields: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {name: fields.get(prefix + name, "").strip() for name in FIELDS}


def parse_step(
    fields: Mapping[str, str], *, prefix: str, _: Gettext
) -> tuple[StepCreate | None, dict[str, str]]:
    """The step the form describes, or the problem of each field. The form sends only what
    applies: whether the offer was accepted only with an offer, the win-back answer only
    with the outcome lost (the page hides the rest)."""
    raw = raw_fields(fields, prefix)
    offer = raw["offer_code"] or None
    lost = raw["outcome"] == "lost"
    data: dict[str, Any] = {
        "level": raw["level"],
        "outcome": raw["outcome"],
        "reason_code": raw["reason_code"],
        "reason_text": raw["reason_text"] or None,
        "offer_code": offer,
        "offer_accepted": YES_NO.get(raw["offer_accepted"]) if offer else None,
        "customer_answer": raw["customer_answer"] or None,
        "escalate_to": (raw["escalate_to"] or None) if raw["outcome"] == "escalated" else None,
        "win_back": YES_NO.get(raw["win_back"]) if lost else None,
        "win_back_on": (raw["win_back_on"] or None) if lost and raw["win_back"] == "true" else None,
    }
    try:
        return StepCreate.model_validate(data), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "outcome"
            if error["type"] == "string_too_long":
                limit = (error.get("ctx") or {}).get("max_length", "")
                errors.setdefault(
                    name, _("Too long: at most %(count)s characters.") % {"count": limit}
                )
            else:
                errors.setdefault(name, problem(name, raw, _))
        return None, errors


def problem(name: str, raw: Mapping[str, str], _: Gettext) -> str:
    """One field's problem in words. The service's checks (rule RT-4) and the form's own
    parse name the same fields; the form's values tell which of a field's problems it is."""
    if name == "outcome":
        return _("Choose the outcome.")
    if name == "reason_code":
        return _("Choose the customer's reason from the list.")
    if name == "reason_text":
        return _("This reason needs the customer's own words.")
    if name == "offer_code":
        return _("Choose an offer from the list, or no offer.")
    if name == "offer_accepted":
        if raw.get("offer_accepted") == "true":
            return _("The customer accepted the offer: the outcome is retained.")
        return _("Say whether the customer accepted the offer.")
    if name == "escalate_to":
        return _("Choose the level to escalate to.")
    if name == "win_back":
        return _("Ask whether the customer might come back, and record the answer.")
    if name == "win_back_on":
        if not raw.get("win_back_on"):
            return _("Give the day the customer might come back.")
        return _("Give a day after today, within the period the rules allow.")
    if name == "level":
        return _("Reload the case: its level is not the one the form was for.")
    return _("Check this field.")


def field_problems(
    problems: Iterable[tuple[str, str]], fields: Mapping[str, str], *, prefix: str, _: Gettext
) -> dict[str, str]:
    """The service's `InvalidFields` problems, one message per field."""
    raw = raw_fields(fields, prefix)
    errors: dict[str, str] = {}
    for name, _detail in problems:
        errors.setdefault(name, problem(name, raw, _))
    return errors


def offer_refused(exc: OfferAboveLevel, lang_zh: bool, _: Gettext) -> str:
    """rules RT-1..RT-3: an offer above the caller's level, in the page's language."""
    offer = exc.offer.zh if lang_zh else exc.offer.en
    needed = _(labels.LEVEL_ROLES[exc.offer.lowest_level])
    if exc.level is None:
        return _(
            "The offer “%(offer)s” needs level %(needed)s (%(role)s) or above; "
            "your role makes no offers. Nothing was recorded."
        ) % {"offer": offer, "needed": exc.offer.lowest_level, "role": needed}
    return _(
        "The offer “%(offer)s” needs level %(needed)s (%(role)s) or above; you act at level "
        "%(level)s. Nothing was recorded: choose an offer of your level."
    ) % {"offer": offer, "needed": exc.offer.lowest_level, "role": needed, "level": exc.level}
