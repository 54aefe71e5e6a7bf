"""Demo data: a user of each role and a few hundred callbacks of every type over the last days,
some already tried, so that every screen and endpoint has something to show."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col

from callcenter.callbacks.models import Attempt, Callback
from callcenter.callbacks.rules import AttemptOutcome, EventType
from callcenter.callbacks.schemas import AttemptCreate
from callcenter.callbacks.service import claim_next, ingest_events, record_attempt
from callcenter.config import CallbackType, RulesConfig
from callcenter.db import Database
from callcenter.demo_history import load_history
from callcenter.forecast.service import set_roster
from callcenter.questionnaires.answers import asked_questions
from callcenter.questionnaires.definitions import QuestionKind, ScriptDefinition
from callcenter.questionnaires.loader import ScriptSet
from callcenter.questionnaires.service import definition_of, record_answers, sync_scripts
from callcenter.retention.models import RetentionCase
from callcenter.retention.rules import StepOutcome
from callcenter.retention.schemas import StepCreate
from callcenter.retention.service import record_step
from callcenter.users.models import User, UserRole
from callcenter.users.service import create_token, create_user

DEMO_USERS: list[tuple[str, UserRole, str, str, str]] = [
    # username, role, password, display name, employee number
    ("admin", UserRole.ADMIN, "demo-admin-pass", "系统管理员", "A0001"),
    ("manager1", UserRole.MANAGER, "demo-manager-pass", "陈经理", "M1001"),
    ("supervisor1", UserRole.SUPERVISOR, "demo-supervisor-pass", "林班长", "S2001"),
    ("lead1", UserRole.RETENTION_LEAD, "demo-lead-pass", "黄主管", "R3001"),
    ("agent1", UserRole.AGENT, "demo-agent-pass", "张丽", "10050101"),
    ("agent2", UserRole.AGENT, "demo-agent-pass", "李明", "10050102"),
    ("agent3", UserRole.AGENT, "demo-agent-pass", "王静", "10050103"),
    ("ordersys", UserRole.SYSTEM, "", "订单系统", ""),
]

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许韩冯"
    "邓曹彭曾萧田董潘袁蔡蒋余于杜叶程苏魏吕丁任沈"
)
_GIVEN = [
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "华",
    "建国",
    "志强",
    "海燕",
    "文",
    "晓东",
    "丹",
    "俊杰",
    "淑珍",
    "国华",
]
_REGIONS = ["福州", "厦门", "泉州", "漳州", "莆田", "三明", "南平", "龙岩", "宁德"]
_PREFIXES = [
    "138",
    "139",
    "135",
    "136",
    "137",
    "150",
    "151",
    "152",
    "158",
    "159",
    "182",
    "187",
    "188",
]


def _events(now: datetime, per_type: int, rng: random.Random) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    serial = 0
    for event_type in EventType:
        for _ in range(per_type):
            serial += 1
            # Spread over the last three days; the proactive triggers further back so that
            # some of their contacts are already due.
            back = timedelta(minutes=rng.randint(5, 72 * 60))
            if event_type is EventType.INSTALL_ACCEPTED:
                back += timedelta(days=3)
            customer = rng.randint(1, per_type * 5)
            events.append(
                {
                    "event_id": f"demo-{serial:05d}",
                    "type": event_type.value,
                    "occurred_at": (now - back).isoformat(),
                    "order_id": f"ORD-{200000 + serial}",
                    "customer": {
                        "id": f"C-{100000 + customer}",
                        "name": rng.choice(_SURNAMES) + rng.choice(_GIVEN),
                        "phone": rng.choice(_PREFIXES) + f"{rng.randint(0, 99999999):08d}",
                        "region": rng.choice(_REGIONS),
                    },
                }
            )
    rng.shuffle(events)
    return events


def sample_answers(definition: ScriptDefinition, rng: random.Random) -> dict[str, Any]:
    """A plausible, complete answer set: mostly content customers, some not."""
    answers: dict[str, Any] = {}
    skipped: set[str] = set()  # optional remarks the customer did not make
    while True:
        todo = [
            q
            for q in asked_questions(definition, answers)
            if q.id not in answers and q.id not in skipped
        ]
        if not todo:
            return answers
        question = todo[0]
        if question.kind is QuestionKind.YES_NO:
            answers[question.id] = rng.random() < 0.85
        elif question.kind is QuestionKind.RATING:
            answers[question.id] = rng.choice([5, 5, 5, 4, 4, 3, 2])
        elif question.kind is QuestionKind.COUNT:
            answers[question.id] = rng.choice([1, 1, 2, 3])
        elif question.kind is QuestionKind.CHOICE:
            choice = rng.choice(question.choices)
            answers[question.id] = (
                {"choice": choice.value, "text": "客户另有说明"} if choice.other else choice.value
            )
        elif question.required or rng.random() < 0.3:
            answers[question.id] = rng.choice(["希望上门前再电话确认一次。", "没有其他意见。"])
        else:
            skipped.add(question.id)


def load_demo(
    database: Database,
    *,
    now: datetime,
    config: RulesConfig,
    per_type: int,
    scripts: ScriptSet,
) -> str:
    """Load the demo; running it again adds only what is missing (intake is idempotent).
    Returns a report to print."""
    with database.uow() as uow:
        existing = set(uow.session.execute(sa.select(col(User.username))).scalars())
        tried_before = uow.session.execute(sa.select(sa.func.count(col(Attempt.id)))).scalar_one()
    for username, role, password, display, number in DEMO_USERS:
        if username not in existing:
            create_user(
                database.uow(),
                username=username,
                role=role,
                now=now,
                password=password or None,
                display_name=display,
                employee_number=number or None,
            )
    sync_scripts(database.uow(), scripts=scripts, now=now)
    # Before the other callbacks: each demo churn call is then the one its agent claims.
    walked = _retention_cases(database, now=now, config=config)
    rng = random.Random(10050)
    events = _events(now, per_type, rng)
    created = 0
    for start in range(0, len(events), 500):
        batch = ingest_events(
            database.uow(), events=events[start : start + 500], now=now, config=config
        )
        created += batch.created
    lines = []
    if created == 0 and "ordersys" in existing:
        lines.append("Demo data is already loaded.")
    else:
        tried = 0 if tried_before else _some_history(database, now=now, config=config, rng=rng)
        # The manager's dashboards: two months of closed history and its nightly snapshots.
        history = load_history(database, now=now, config=config, sample_answers=sample_answers)
        _roster(database, now=now, config=config)
        lines.append(f"Loaded {created} callbacks of every type; {tried} already tried.")
        if walked:
            lines.append(f"{walked} retention cases walked through levels 1 to 3.")
        if history:
            lines.append(f"{history} callbacks of the last two months, with their snapshots.")
        token = create_token(database.uow(), username="ordersys", now=now)
        lines.append(f"API token of the order system (ordersys), shown once: {token}")
    lines.append("")
    lines.append("Demo users (development only):")
    lines.append(f"  {'username':<12} {'role':<15} password")
    for username, role, password, _, _ in DEMO_USERS:
        lines.append(f"  {username:<12} {role.value:<15} {password or '(API token only)'}")
    lines.append("An agent's API token: callcenter tokens create --user agent1")
    return "\n".join(lines)


def _roster(database: Database, *, now: datetime, config: RulesConfig) -> None:
    """Three agents in every calling window of today and tomorrow, for the forecast."""
    with database.uow() as uow:
        supervisor = uow.session.execute(
            sa.select(User).where(col(User.username) == "supervisor1")
        ).scalar_one()
    today = now.astimezone(ZoneInfo(config.default_timezone)).date()
    for day in (today, today + timedelta(days=1)):
        for window in config.windows:
            set_roster(
                database.uow(),
                day=day,
                window_start=window.start,
                agents=3,
                team=None,
                user=supervisor,
                now=now,
                config=config,
            )


def _some_history(
    database: Database, *, now: datetime, config: RulesConfig, rng: random.Random
) -> int:
    """Play a few earlier calls, at instants inside yesterday's windows."""
    with database.uow() as uow:
        agents = list(
            uow.session.execute(
                sa.select(User).where(col(User.role) == UserRole.AGENT).order_by(col(User.id))
            ).scalars()
        )
    outcomes = [
        AttemptOutcome.ANSWERED,
        AttemptOutcome.ANSWERED,
        AttemptOutcome.NO_ANSWER,
        AttemptOutcome.BUSY,
        AttemptOutcome.REFUSED,
    ]
    tried = 0
    for hours_back in (30, 27, 22, 20):
        instant = now - timedelta(hours=hours_back)
        for _ in range(12):
            agent = rng.choice(agents)
            claim = claim_next(database.uow(), agent=agent, now=instant, config=config)
            if claim is None:
                break
            outcome = rng.choice(outcomes)
            when = instant + timedelta(minutes=4)
            if outcome is AttemptOutcome.ANSWERED:
                with database.uow() as uow:
                    version = uow.session.get_one(Callback, claim.callback.id).script_version_id
                    assert version is not None
                    _, definition = definition_of(uow.session, version)
                record_answers(
                    database.uow(),
                    callback_id=claim.callback.id,
                    user=agent,
                    answers=sample_answers(definition, rng),
                    now=when,
                )
            churn = claim.callback.type is CallbackType.CHURN
            record_attempt(
                database.uow(),
                callback_id=claim.callback.id,
                agent=agent,
                attempt=AttemptCreate(outcome=outcome),
                now=when,
                config=config,
                # rule RT-1: an answered churn call records its level-1 retention step
                retention_step=StepCreate(
                    level=1, outcome=StepOutcome.ESCALATED, reason_code="price"
                )
                if churn and outcome is AttemptOutcome.ANSWERED
                else None,
            )
            # The other callbacks of the same claim go back to the queue when the lease lapses.
            tried += 1
    return tried


# The churn script's reasons (Q-CHURN (1)) for the retention taxonomy's codes.
_SCRIPT_REASON = {
    "price": "price",
    "network_quality": "quality",
    "service_attitude": "service",
    "moving_house": "moving",
    "competitor_offer": "other_operator",
    "no_longer_needed": "not_needed",
}

# How far each demo case goes (rules RT-1..RT-4): the outcome of each level in turn, the
# reason, and the offer made at the level that decided.
_RETENTION_PLAN: list[tuple[list[StepOutcome], str, str | None]] = [
    ([StepOutcome.RETAINED], "price", "discount_10_6m"),
    ([StepOutcome.RETAINED], "network_quality", "speed_up_6m"),
    ([StepOutcome.ESCALATED], "competitor_offer", "discount_10_6m"),
    ([StepOutcome.ESCALATED], "price", None),
    ([StepOutcome.ESCALATED], "service_attitude", None),
    ([StepOutcome.ESCALATED, StepOutcome.RETAINED], "price", "discount_20_12m"),
    ([StepOutcome.ESCALATED, StepOutcome.ESCALATED], "competitor_offer", "free_month_1"),
    ([StepOutcome.ESCALATED, StepOutcome.ESCALATED], "network_quality", "speed_up_12m"),
    (
        [StepOutcome.ESCALATED, StepOutcome.ESCALATED, StepOutcome.RETAINED],
        "price",
        "free_months_3",
    ),
    (
        [StepOutcome.ESCALATED, StepOutcome.ESCALATED, StepOutcome.LOST],
        "moving_house",
        "discount_30_12m",
    ),
    (
        [StepOutcome.ESCALATED, StepOutcome.ESCALATED, StepOutcome.LOST],
        "no_longer_needed",
        None,
    ),
]


def _retention_cases(database: Database, *, now: datetime, config: RulesConfig) -> int:
    """Cancellations from two days ago, each walked through the levels of its plan: some
    retained at each level, some waiting at levels 2 and 3, two lost (one with a win-back
    callback). Returns how many were walked (none when they are already there)."""
    zone = ZoneInfo(config.default_timezone)
    day = (now.astimezone(zone) - timedelta(days=2)).date()
    start = datetime.combine(day, datetime.min.time(), tzinfo=zone).replace(hour=9)
    events = [
        {
            "event_id": f"demo-retention-{n:03d}",
            "type": EventType.CANCELLATION.value,
            "occurred_at": (start + timedelta(minutes=10 * n - 20)).isoformat(),
            "order_id": f"ORD-{300000 + n}",
            "customer": {
                "id": f"C-3{n:05d}",
                "name": _SURNAMES[n] + _GIVEN[n],
                "phone": f"1590591{n:04d}",
                "region": _REGIONS[n % len(_REGIONS)],
            },
        }
        for n in range(len(_RETENTION_PLAN))
    ]
    with database.uow() as uow:
        people = {
            user.username: user
            for user in uow.session.execute(
                sa.select(User).where(
                    col(User.username).in_(["agent1", "agent2", "agent3", "supervisor1", "lead1"])
                )
            ).scalars()
        }
    walked = 0
    for n, (payload, (outcomes, reason, offer)) in enumerate(
        zip(events, _RETENTION_PLAN, strict=True)
    ):
        at = start + timedelta(minutes=10 * n)
        batch = ingest_events(database.uow(), events=[payload], now=at, config=config)
        if batch.created == 0:
            continue  # loaded before
        agent = people[f"agent{n % 3 + 1}"]
        claim = claim_next(database.uow(), agent=agent, now=at, config=config)
        if claim is None or claim.callback.event_id != payload["event_id"]:
            continue  # older data in the way: this case stays at level 1
        with database.uow() as uow:
            case_id = uow.session.execute(
                sa.select(col(RetentionCase.id)).where(
                    col(RetentionCase.callback_id) == claim.callback.id
                )
            ).scalar_one()
        retained = outcomes[-1] is StepOutcome.RETAINED and len(outcomes) == 1
        answers: dict[str, Any] = {"reason": _SCRIPT_REASON[reason], "retained": retained}
        if not retained:
            answers["reinstall"] = "later" if outcomes[-1] is StepOutcome.LOST else "not_now"
        record_answers(
            database.uow(), callback_id=claim.callback.id, user=agent, answers=answers, now=at
        )
        actors = [agent, people["supervisor1"], people["lead1"]]
        when = [at + timedelta(minutes=5), at + timedelta(hours=3), at + timedelta(days=1)]
        for level, outcome in enumerate(outcomes, start=1):
            last = level == len(outcomes)
            lost = outcome is StepOutcome.LOST
            come_back = lost and n % 2 == 1
            record_step(
                database.uow(),
                case_id=case_id,
                user=actors[level - 1],
                step=StepCreate(
                    level=level,
                    outcome=outcome,
                    reason_code=reason,
                    offer_code=offer if last else None,
                    offer_accepted=(outcome is StepOutcome.RETAINED) if last and offer else None,
                    customer_answer="客户表示会考虑。"
                    if outcome is StepOutcome.ESCALATED
                    else None,
                    win_back=come_back if lost else None,
                    win_back_on=(when[level - 1] + timedelta(days=60)).astimezone(zone).date()
                    if come_back
                    else None,
                ),
                now=when[level - 1],
                config=config,
            )
        walked += 1
    return walked
