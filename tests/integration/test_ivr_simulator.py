"""Without a Twilio account: the local simulator places and plays IVR calls, and
`callcenter ivr call` plays one by hand."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from callcenter.callbacks.rules import CallbackStatus
from callcenter.callbacks.service import get_callback, ingest_events
from callcenter.cli import app as cli
from callcenter.clock import FixedClock
from callcenter.config import Settings, TelephonyProvider, TelephonySettings, load_settings
from callcenter.db import Database
from callcenter.ivr.rules import FINAL, Disposition
from callcenter.ivr.service import list_ivr_calls
from callcenter.models import metadata
from callcenter.questionnaires.loader import shipped_scripts
from callcenter.questionnaires.service import list_answers, sync_scripts
from callcenter.telephony import telephony_for
from callcenter.telephony.simulator import SimulatedTelephony
from callcenter.users.models import UserRole
from scheduler import jobs
from tests.conftest import IN_WINDOW, Users
from tests.console.helpers import sign_in
from tests.factories import event
from tests.ivr_support import AppTransport, SimulatedSleep, ivr_rules


def test_without_an_account_the_settings_pick_the_simulator() -> None:
    assert isinstance(telephony_for(TelephonySettings(), play_simulated=False), SimulatedTelephony)


def test_the_simulator_plays_every_placed_call_to_its_end(
    database: Database, clock: FixedClock
) -> None:
    settings = Settings(
        database_url=database.url,
        scheduler_enabled=False,
        rules=ivr_rules(),
        telephony=TelephonySettings(
            public_base_url="http://testserver", calls_per_second=5, max_concurrent=100
        ),
    )
    assert settings.telephony.provider is TelephonyProvider.SIMULATOR
    app = create_app(settings, database=database, clock=clock, start_scheduler=False)
    with TestClient(app) as client:
        ids = []
        for kind in ["install_completed", "repair_replied"] * 5:
            result = ingest_events(
                database.uow(),
                events=[event(kind, occurred_at=clock.now() - timedelta(hours=1))],
                now=clock.now(),
                config=settings.rules,
            )
            assert result.results[0].callback is not None
            ids.append(result.results[0].callback.id)
        telephony = SimulatedTelephony(
            signing_key=settings.telephony.signing_key(),
            transport=AppTransport(client),
            seed=7,
            busy_share=0.2,
            no_answer_share=0.1,
            machine_share=0.1,
            workers=1,
        )
        sleep = SimulatedSleep(clock)
        try:
            _dial_ten(database, clock, settings, telephony, sleep)
        finally:
            telephony.wait()
        assert list(telephony.errors) == []
        calls = list_ivr_calls(database.uow())
        assert len(calls) == 10 and all(call.status in FINAL for call in calls)
        assert {call.disposition for call in calls} <= set(Disposition)
        for call in calls:
            callback = get_callback(database.uow(), callback_id=call.callback_id, now=clock.now())
            assert len(callback.attempts) == 1
            if call.disposition is Disposition.COMPLETED:
                assert callback.status is CallbackStatus.COMPLETED
                assert list_answers(database.uow(), callback_id=call.callback_id)
        # A supervisor watches them in the console: each call, its keys, how it ended.
        sign_in(client, Users(database, clock), "sup1", UserRole.SUPERVISOR)
        page = client.get("/console/ivr").text
        assert "通话 (10)" in page
        keyed = next(call for call in calls if any(step.digits for step in call.steps))
        step = next(step for step in keyed.steps if step.digits)
        assert f"{step.question_id}={step.digits}" in page
        assert client.get("/console/ivr/panel").text.count("<tr>") == 1 + 10  # with the head


def _dial_ten(
    database: Database,
    clock: FixedClock,
    settings: Settings,
    telephony: SimulatedTelephony,
    sleep: SimulatedSleep,
) -> None:
    first = clock.now()
    report = jobs.ivr_dial(database, clock, settings, telephony, sleep=sleep)
    assert report.placed == 5  # five calls per second, 0.2 s apart
    assert sleep.slept == pytest.approx([0.2] * 4)
    placed = report.placed
    while placed < 10:
        placed += jobs.ivr_dial(database, clock, settings, telephony, sleep=sleep).placed
    assert clock.now() - first == timedelta(seconds=1.8)  # the tenth call's slot


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", url)
    monkeypatch.setenv("CALLCENTER_RULES__TYPES__INSTALL__CHANNEL", "ivr")
    database = Database(url)
    metadata.create_all(database.engine)
    return database


def test_ivr_call_has_help() -> None:
    result = CliRunner().invoke(cli, ["ivr", "call", "--help"])
    assert result.exit_code == 0 and "--keys" in result.output


def test_ivr_call_plays_one_call_with_the_given_keys(cli_db: Database) -> None:
    settings = load_settings()
    sync_scripts(cli_db.uow(), scripts=shipped_scripts(), now=IN_WINDOW)
    result = ingest_events(
        cli_db.uow(),
        events=[event(occurred_at=IN_WINDOW - timedelta(hours=1))],
        now=IN_WINDOW,
        config=settings.rules,
    )
    callback = result.results[0].callback
    assert callback is not None
    runner = CliRunner()
    done = runner.invoke(cli, ["ivr", "call", str(callback.id), "--keys", "1,1,2,4", "--any-time"])
    assert done.exit_code == 0, done.output
    assert "KEYS: 4" in done.output and "outcome answered" in done.output
    answers = {a.question_id: a.value for a in list_answers(cli_db.uow(), callback_id=callback.id)}
    assert answers == {
        "working": True,
        "appointment_kept": True,
        "conduct_standard": False,
        "overall": 4,
    }
    again = runner.invoke(cli, ["ivr", "call", str(callback.id), "--keys", "1"])
    assert again.exit_code == 1 and "not pending" in again.output
    bad = runner.invoke(cli, ["ivr", "call", str(callback.id), "--keys", "x"])
    assert bad.exit_code == 2
