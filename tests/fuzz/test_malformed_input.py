"""Malformed input through the HTTP API, on SQLite and PostgreSQL: events with fields missing,
extra, naive or of the wrong type, unknown event types and oversize batches; phone numbers and
time zones of every shape; answer sets with wrong types, unknown questions, values out of range
and too many answers. Each is refused with a 4xx whose JSON names the field (422 `detail` with
`loc`), never a 5xx, and the database is exactly as it was."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from httpx2 import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.callbacks.rules import EventType
from callcenter.customers.rules import InvalidPhone, check_zone, normalize_phone
from callcenter.questionnaires.definitions import RATING_MAX, RATING_MIN
from tests.conftest import IN_WINDOW
from tests.factories import event, hours
from tests.fuzz.support import IDENTITIES, FuzzTarget

FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# JSON values of every type, small. Text without NUL: a NUL anywhere in a body is refused
# for the whole body, naming where it is (its own test below), before the field is looked at.
_NO_NUL = st.characters(blacklist_characters="\x00")


def text(**sizes: int) -> st.SearchStrategy[str]:
    return st.text(_NO_NUL, **sizes)


_TEXT = text(max_size=8)
_KEYS = text(max_size=5)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=3),
    max_leaves=5,
)
NOT_TEXT = JSON.filter(lambda value: not isinstance(value, str))
NOT_OBJECT = JSON.filter(lambda value: not isinstance(value, dict))

Path = tuple[str | int, ...]
FieldPath = tuple[str, ...]  # a field of an event


def refused(target: FuzzTarget, response: Response, field: Path, before: Any) -> None:
    """A 4xx whose JSON says what is wrong with `field`, and nothing written."""
    target.check_after(before, response.status_code, f"a request with a bad {field}")
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    for item in detail:
        assert item["msg"] and item["loc"][0] in ("body", "query", "path"), item
    named = [tuple(item["loc"][1 : len(field) + 1]) for item in detail]
    assert field in named, f"no error names {field}: {detail}"


def post_event(target: FuzzTarget, payload: Any) -> Response:
    return target.client.post("/api/v1/events", json=payload, headers=target.headers("system"))


def fresh_event() -> dict[str, Any]:
    return event(occurred_at=IN_WINDOW - hours(1))


# ---------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------

REQUIRED: list[FieldPath] = [
    ("event_id",),
    ("type",),
    ("occurred_at",),
    ("order_id",),
    ("customer",),
    ("customer", "id"),
    ("customer", "name"),
    ("customer", "phone"),
]
TEXT_FIELDS: list[FieldPath] = [
    ("event_id",),
    ("type",),
    ("order_id",),
    ("customer", "id"),
    ("customer", "name"),
    ("customer", "phone"),
    ("customer", "timezone"),
    ("customer", "region"),
]
KNOWN = {"event_id", "type", "occurred_at", "order_id", "customer", "id", "name", "phone"}
KNOWN |= {"timezone", "region", "title"}
EVENT_TYPES = {kind.value for kind in EventType}


def _set(payload: dict[str, Any], path: FieldPath, value: Any) -> None:
    *parents, last = path
    for key in parents:
        payload = payload[key]
    payload[last] = value


def _drop(payload: dict[str, Any], path: FieldPath) -> None:
    *parents, last = path
    for key in parents:
        payload = payload[key]
    del payload[last]


@st.composite
def malformed_events(draw: st.DrawFn) -> tuple[dict[str, Any], FieldPath]:
    """A valid event with one thing wrong, and the field it is wrong in."""
    payload = fresh_event()
    kind = draw(st.sampled_from(["missing", "extra", "naive", "wrong type", "unknown type"]))
    if kind == "missing":
        field = draw(st.sampled_from(REQUIRED))
        _drop(payload, field)
    elif kind == "extra":
        where = draw(st.sampled_from([(), ("customer",)]))
        name = draw(text(min_size=1, max_size=12).filter(lambda key: key not in KNOWN))
        field = (*where, name)
        _set(payload, field, draw(JSON))
    elif kind == "naive":
        field = ("occurred_at",)
        when = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
        _set(payload, field, when.isoformat())
    elif kind == "wrong type":
        field = draw(st.sampled_from([*TEXT_FIELDS, ("occurred_at",), ("customer",)]))
        if field == ("customer",):
            value = draw(NOT_OBJECT)
        elif field == ("occurred_at",):
            # Numbers (and numeric text) would be read as seconds since 1970.
            value = draw(NOT_TEXT | st.integers().map(str) | st.floats(allow_nan=False).map(str))
        elif field in (("customer", "timezone"), ("customer", "region")):
            value = draw(NOT_TEXT.filter(lambda value: value is not None))
        else:
            value = draw(NOT_TEXT)
        _set(payload, field, value)
    else:
        field = ("type",)
        _set(
            payload,
            field,
            draw(text(max_size=30).filter(lambda t: t.strip() not in EVENT_TYPES)),
        )
    return payload, field


@pytest.fixture(scope="module")
def events_target(target: FuzzTarget) -> FuzzTarget:
    return target


@FUZZ
@given(malformed=malformed_events())
def test_a_malformed_event_is_refused_naming_its_field(
    events_target: FuzzTarget, malformed: tuple[dict[str, Any], FieldPath]
) -> None:
    payload, field = malformed
    before = events_target.state_before()
    refused(events_target, post_event(events_target, payload), field, before)


@FUZZ
@given(malformed=malformed_events())
def test_a_malformed_event_in_a_batch_is_reported_invalid_and_creates_nothing(
    events_target: FuzzTarget, malformed: tuple[dict[str, Any], FieldPath]
) -> None:
    """The batch answers per event: the bad one is `invalid` with its field named."""
    payload, field = malformed
    before = events_target.state_before()
    response = events_target.client.post(
        "/api/v1/events/batch", json=[payload], headers=events_target.headers("system")
    )
    if "\\u0000" in json.dumps(payload):
        # Text with NUL is refused for the whole request, before any event is read.
        refused(events_target, response, (0,), before)
        return
    # Nothing was created, so the database must be as it was, though the answer is a 200.
    events_target.check_after(before, 400, "a batch of one bad event")
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["status"] == "invalid", result
    dotted = ".".join(str(part) for part in field)
    assert any(error["field"].startswith(dotted) for error in result["errors"]), result


@FUZZ
@given(
    body=st.one_of(
        NOT_OBJECT.map(lambda value: [value]),
        st.just([]),
        st.dictionaries(text(max_size=5), JSON, max_size=2),
    )
)
def test_a_batch_that_is_not_a_list_of_objects_is_refused(
    events_target: FuzzTarget, body: Any
) -> None:
    before = events_target.state_before()
    response = events_target.client.post(
        "/api/v1/events/batch", json=body, headers=events_target.headers("system")
    )
    field: Path = (0,) if isinstance(body, list) and body else ()
    refused(events_target, response, field, before)


def test_an_oversize_batch_is_refused_whole(events_target: FuzzTarget) -> None:
    batch = [fresh_event() for _ in range(1001)]
    before = events_target.state_before()
    response = events_target.client.post(
        "/api/v1/events/batch", json=batch, headers=events_target.headers("system")
    )
    refused(events_target, response, (), before)
    assert "1000" in response.text


# ---------------------------------------------------------------------------------------
# Phone numbers and time zones
# ---------------------------------------------------------------------------------------

UNICODE_DIGITS = st.text(alphabet=st.characters(categories=["Nd"]), min_size=5, max_size=16)
PHONES = st.one_of(
    text(max_size=40),
    st.text(alphabet="0123456789+-() ", max_size=40),
    st.text(alphabet=st.characters(categories=["Lu", "Ll", "Lo"]), min_size=1, max_size=20),
    st.integers(min_value=10**32, max_value=10**60).map(str),  # too long
    UNICODE_DIGITS,
    st.sampled_from(
        ["", " ", "138", "+86", "1381234567８", "13812345678\u200b", "+861381234567890"]
    ),
)


def _phone_is_valid(raw: str) -> bool:
    text = raw.strip()
    if not text or len(text) > 32:
        return False
    try:
        normalize_phone(text, "CN")
    except InvalidPhone:
        return False
    return True


@FUZZ
@given(phone=PHONES)
def test_a_phone_number_is_stored_in_e164_or_refused_naming_it(
    events_target: FuzzTarget, phone: str
) -> None:
    payload = fresh_event()
    payload["customer"]["phone"] = phone
    before = events_target.state_before()
    response = post_event(events_target, payload)
    if _phone_is_valid(phone):
        events_target.check_after(before, response.status_code, "a valid phone")
        assert response.status_code == 201, response.text
        assert response.json()["customer"]["phone_masked"].startswith("+")
    else:
        refused(events_target, response, ("customer", "phone"), before)


ZONES = st.one_of(
    text(max_size=70),
    st.sampled_from(
        [
            "UTC+8",
            "GMT+08:00",
            "+08:00",
            "",
            " ",
            "America",  # a folder of the zone database, not a zone
            "Asia/",
            "Asia//Shanghai",
            "../../etc/passwd",
            "/etc/localtime",
            "Asia/Shanghai/",
            "asia/shanghai ",
            "Asia/Shang hai",
            "Asia/上海",
            "x" * 65,
            "Asia/" + "x" * 1000,
        ]
    ),
)


def _zone_is_valid(zone: str) -> bool:
    name = zone.strip()
    if len(name) > 64:
        return False
    try:
        check_zone(name)
    except ValueError:
        return False
    return True


@FUZZ
@given(zone=ZONES)
def test_a_time_zone_is_an_iana_zone_or_refused_naming_it(
    events_target: FuzzTarget, zone: str
) -> None:
    payload = fresh_event()
    payload["customer"]["timezone"] = zone
    before = events_target.state_before()
    response = post_event(events_target, payload)
    if _zone_is_valid(zone):
        events_target.check_after(before, response.status_code, "a valid zone")
        assert response.status_code == 201, response.text
        assert response.json()["customer"]["timezone"] == zone.strip()
    else:
        refused(events_target, response, ("customer", "timezone"), before)


# ---------------------------------------------------------------------------------------
# Answer sets
# ---------------------------------------------------------------------------------------

Questions = dict[str, str]  # question id → kind


@st.composite
def malformed_answers(draw: st.DrawFn, questions: Questions) -> tuple[Any, Path]:
    """An answer set with one thing wrong for the script `questions`, and the field it is
    wrong in. Every value drawn is wrong for its question whatever was answered before."""
    kind = draw(
        st.sampled_from(["wrong type", "out of range", "unknown question", "too many", "not a set"])
    )
    if kind in ("wrong type", "out of range"):
        question = draw(st.sampled_from(sorted(questions)))
        shape = questions[question]
        if shape == "yes_no":
            value = draw(JSON.filter(lambda v: not isinstance(v, bool)))
        elif shape in ("rating", "count") and kind == "out of range":
            low = (
                st.integers(max_value=RATING_MIN - 1)
                if shape == "rating"
                else st.integers(max_value=-1)
            )
            value = draw(low | st.integers(min_value=RATING_MAX + 1) if shape == "rating" else low)
        elif shape in ("rating", "count"):
            value = draw(JSON.filter(lambda v: not isinstance(v, int) or isinstance(v, bool)))
        elif shape == "text":
            value = draw(NOT_TEXT | st.sampled_from(["", "   "]))
        else:  # a choice: text or {choice, text}, never a number, list or null
            value = draw(NOT_TEXT.filter(lambda v: not isinstance(v, dict)))
        return {"answers": {question: value}}, ("answers", question)
    if kind == "unknown question":
        question = draw(text(min_size=1, max_size=20).filter(lambda q: q not in questions))
        return {"answers": {question: draw(JSON)}}, ("answers", question)
    if kind == "too many":
        count = draw(st.integers(min_value=101, max_value=150))
        return {"answers": {f"q{n}": True for n in range(count)}}, ("answers",)
    return {"answers": draw(NOT_OBJECT | st.just({}))}, ("answers",)


@pytest.fixture(scope="module")
def held_callback(target: FuzzTarget) -> tuple[FuzzTarget, int, Questions]:
    """A callback that agent3 holds, with nothing answered yet, and its script's questions."""
    username, role = IDENTITIES["agent3"]
    headers = target.users.headers(username, role)
    claim = target.client.post("/api/v1/callbacks/claim", headers=headers)
    assert claim.status_code == 200, claim.text
    callback_id = int(claim.json()["callback"]["id"])
    script = target.client.get(f"/api/v1/callbacks/{callback_id}/script", headers=headers)
    assert script.status_code == 200, script.text
    assert not script.json()["answers"]
    questions = {q["id"]: q["kind"] for q in script.json()["questions"]}
    target.last_fingerprint = None
    return target, callback_id, questions


@FUZZ
@given(data=st.data())
def test_a_malformed_answer_set_is_refused_naming_the_question(
    held_callback: tuple[FuzzTarget, int, Questions], data: st.DataObject
) -> None:
    target, callback_id, questions = held_callback
    body, field = data.draw(malformed_answers(questions))
    before = target.state_before()
    response = target.client.post(
        f"/api/v1/callbacks/{callback_id}/answers", json=body, headers=target.headers("agent3")
    )
    refused(target, response, field, before)


@FUZZ
@given(value=JSON)
def test_a_correction_to_a_wrong_value_is_refused_naming_the_question(
    events_target: FuzzTarget, value: Any
) -> None:
    """agent2's install answers (from the seed): `working` is yes/no, so anything but a
    boolean is refused."""
    target = events_target
    if isinstance(value, bool):
        value = None
    answers = target.client.get(
        f"/api/v1/callbacks/{target.seeded.install_callback}/answers",
        headers=target.headers("supervisor"),
    ).json()
    working = next(a for a in answers if a["question_id"] == "working" and a["corrects_id"] is None)
    before = target.state_before()
    response = target.client.post(
        f"/api/v1/answers/{working['id']}/corrections",
        json={"value": value, "reason": "the customer misheard"},
        headers=target.headers("agent2"),
    )
    refused(target, response, ("answers", "working"), before)


@FUZZ
@given(prefix=_TEXT, suffix=_TEXT)
def test_a_nul_character_in_a_body_is_refused_naming_where_it_is(
    events_target: FuzzTarget, prefix: str, suffix: str
) -> None:
    """PostgreSQL cannot store U+0000 in text: it is refused up front, on every backend."""
    target = events_target
    payload = fresh_event()
    payload["customer"]["name"] = prefix + "\x00" + suffix
    before = target.state_before()
    refused(target, post_event(target, payload), ("customer", "name"), before)
