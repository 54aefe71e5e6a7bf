"""For the IVR tests: a local fake of Twilio's REST API (the Calls resource), a transport that
plays calls against the app in-process, and the settings of an IVR-enabled centre."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from fastapi.testclient import TestClient

from callcenter.config import RulesConfig, Settings, TelephonySettings
from callcenter.telephony.base import CallRequest
from callcenter.telephony.simulator import WebhookRefused

ACCOUNT_SID = "AC" + "0" * 31 + "7"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
FROM_NUMBER = "+865918000000"
PUBLIC_BASE = "http://testserver"
# Twilio's magic test number for "invalid": the fake answers 400 like Twilio (error 21211).
INVALID_NUMBER = "+15005550001"


@dataclass
class FakeCall:
    sid: str
    form: dict[str, list[str]]
    received_at: float
    status: str = "queued"
    answered_by: str | None = None
    duration: str | None = None

    def field(self, name: str) -> str:
        return self.form[name][0]

    def request(self) -> CallRequest:
        """The call as our side asked for it, for the call player."""
        return CallRequest(
            to=self.field("To"),
            from_=self.field("From"),
            url=self.field("Url"),
            status_callback=self.field("StatusCallback"),
            machine_detection=self.form.get("MachineDetection", [""])[0] == "Enable",
            ring_timeout_seconds=int(self.form.get("Timeout", ["30"])[0]),
            time_limit_seconds=int(self.form.get("TimeLimit", ["600"])[0]),
        )

    def json(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": ACCOUNT_SID,
            "to": self.field("To"),
            "from": self.field("From"),
            "status": self.status,
            "answered_by": self.answered_by,
            "duration": self.duration,
            "direction": "outbound-api",
            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{self.sid}.json",
        }


@dataclass(frozen=True)
class Fault:
    """How the fake answers one request to create a call, instead of taking it at once: an
    HTTP error with Twilio's error body (`status`), or an answer that comes after `delay`
    seconds (longer than the client waits: a timeout). `placed`: the call is taken all the
    same (Twilio got it, its answer was lost)."""

    status: int | None = None
    delay: float = 0.0
    placed: bool = False


# Twilio's error codes for the HTTP statuses the faults answer with.
_ERROR_CODES = {429: 20429, 500: 20500, 502: 20500, 503: 20503}


@dataclass
class FakeTwilio:
    """A small server speaking Twilio's Calls resource: create (POST Calls.json) and fetch
    (GET Calls/{sid}.json), with HTTP Basic authentication by account SID and auth token.
    `faults` are consumed in order, one per request to create a call."""

    url: str = ""
    calls: list[FakeCall] = field(default_factory=list)
    rejected: list[dict[str, list[str]]] = field(default_factory=list)
    # Every request to create a call, taken or not, in the order they came.
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_sid(self, sid: str) -> FakeCall | None:
        return next((call for call in self.calls if call.sid == sid), None)


def _handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    prefix = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _send(self, status: int, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self._send(401, {"code": 20003, "message": "Authenticate", "status": 401})
                return False
            return True

        def do_POST(self) -> None:  # noqa: N802
            if not self._authorised():
                return
            if self.path != f"{prefix}.json":
                self._send(404, {"code": 20404, "message": "not found", "status": 404})
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            with fake.lock:
                fake.requests.append(form)
                fault = fake.faults.pop(0) if fake.faults else None
            if fault is not None and self._faulty(fault, form):
                return
            missing = [name for name in ("To", "From", "Url") if not form.get(name)]
            if missing or form["To"][0] == INVALID_NUMBER:
                with fake.lock:
                    fake.rejected.append(form)
                message = f"missing {missing}" if missing else "The 'To' number is not valid."
                self._send(400, {"code": 21211, "message": message, "status": 400})
                return
            import time

            call = FakeCall("CA" + uuid.uuid4().hex, form, time.monotonic())
            with fake.lock:
                fake.calls.append(call)
            self._send(201, call.json())

        def _faulty(self, fault: Fault, form: dict[str, list[str]]) -> bool:
            """Play `fault`; False when the request is then served normally."""
            import time

            time.sleep(fault.delay)
            if fault.placed:
                call = FakeCall("CA" + uuid.uuid4().hex, form, time.monotonic())
                with fake.lock:
                    fake.calls.append(call)
            status = fault.status or (503 if fault.delay else None)
            if status is None:
                return False
            body = {"code": _ERROR_CODES.get(status, 20500), "message": "fault", "status": status}
            try:
                self._send(status, body)
            except OSError:  # the client gave up waiting and closed the connection
                pass
            return True

        def do_GET(self) -> None:  # noqa: N802
            if not self._authorised():
                return
            sid = self.path.removeprefix(prefix + "/").removesuffix(".json")
            call = fake.by_sid(sid)
            if call is None:
                self._send(404, {"code": 20404, "message": "not found", "status": 404})
            else:
                self._send(200, call.json())

    return Handler


@contextmanager
def fake_twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


class AppTransport:
    """Plays calls against the app in-process (Twilio's requests, through the test client)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.statuses: list[int] = []

    def post(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> str:
        response = self.client.post(url, data=dict(params), headers=dict(headers))
        self.statuses.append(response.status_code)
        if response.status_code >= 300:
            raise WebhookRefused(url, response.status_code, response.text)
        return response.text


def ivr_rules(**types: str) -> RulesConfig:
    """Rules with install, repair and complaint callbacks made by the IVR."""
    chosen = types or {"install": "ivr", "repair": "ivr", "complaint": "ivr"}
    return RulesConfig.model_validate(
        {"types": {kind: {"channel": channel} for kind, channel in chosen.items()}}
    )


def twilio_settings(database_url: str, api_base_url: str | None, **telephony: Any) -> Settings:
    return Settings(
        database_url=database_url,
        scheduler_enabled=False,
        rules=ivr_rules(),
        telephony=TelephonySettings(
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            from_number=FROM_NUMBER,
            public_base_url=PUBLIC_BASE,
            api_base_url=api_base_url,
            **telephony,
        ),
    )


class SimulatedSleep:
    """`sleep` for the dialer on a FixedClock: moves the clock instead of waiting."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        from datetime import timedelta

        self.slept.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))
