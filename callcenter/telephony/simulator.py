"""The local call simulator: plays Twilio's part without Twilio.

`CallPlayer` plays one call the way Twilio does: it fetches our TwiML from the voice webhook,
"says" its texts, presses keys at each <Gather>, follows <Redirect>, and sends signed status
callbacks. `SimulatedTelephony` is the provider used when no Twilio account is configured: a
placed call is played in the background with customers who answer (or not) at random.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from callcenter.config import TelephonyProvider
from callcenter.telephony.base import CallRequest, PlacedCall, ProviderCall, TelephonyError
from callcenter.telephony.signature import HEADER, sign

log = logging.getLogger(__name__)

ACCOUNT_SID = "ACsimulator0000000000000000000000"
HANG_UP = "hangup"  # a key script entry: the customer hangs up here
NO_INPUT = ""  # a key script entry: the customer keys nothing


class Transport(Protocol):
    def post(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> str:
        """POST the form; the response body. Raise on a status other than 2xx."""
        ...


class WebhookRefused(Exception):
    def __init__(self, url: str, status: int, body: str) -> None:
        super().__init__(f"{url} answered {status}: {body[:200]}")
        self.status = status


class UrllibTransport:
    """Plain HTTP with the standard library (the simulator runs in production installs too)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    def post(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> str:
        data = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(url, data=data, headers=dict(headers), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return str(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise WebhookRefused(url, exc.code, exc.read().decode("utf-8", "replace")) from exc


# A key source answers each <Gather>: the keys pressed (ending with '#' where the gather
# finishes on it), NO_INPUT, or HANG_UP.
KeySource = Callable[["GatherPrompt"], str]


@dataclass(frozen=True)
class GatherPrompt:
    texts: tuple[str, ...]
    num_digits: int | None
    finish_on_key: str | None


class Keys:
    """Keys from a script, in order ("1", "12#", NO_INPUT, HANG_UP); hangs up when it runs
    out (the customer stops answering)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = list(keys)
        self.used = 0

    def __call__(self, prompt: GatherPrompt) -> str:
        if self.used >= len(self._keys):
            return HANG_UP
        key = self._keys[self.used]
        self.used += 1
        if prompt.finish_on_key and key not in (NO_INPUT, HANG_UP) and not key.endswith("#"):
            key += prompt.finish_on_key
        return key


class RandomKeys:
    """A made-up customer: mostly content, sometimes not, now and then silent or asking for
    an agent (key 0)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def __call__(self, prompt: GatherPrompt) -> str:
        roll = self.rng.random()
        if roll < 0.04:
            return NO_INPUT
        if prompt.finish_on_key:
            return f"{self.rng.choice([0, 0, 1, 1, 2, 3])}{prompt.finish_on_key}"
        if roll < 0.06:
            return "0"
        if roll < 0.6:
            return "1"
        return self.rng.choice(["1", "2", "3", "4", "5", "5", "5", "4"])


@dataclass
class Transcript:
    """What happened on a played call, in order: what the machine said and what was keyed."""

    sid: str
    lines: list[str] = field(default_factory=list)
    requests: int = 0
    hung_up_by_customer: bool = False
    status: str = ""

    def said(self) -> list[str]:
        return [line[5:] for line in self.lines if line.startswith("SAY: ")]

    def __str__(self) -> str:
        return "\n".join(self.lines)


class CallPlayer:
    """Plays Twilio's part in one call against our webhooks, signing every request."""

    def __init__(
        self,
        transport: Transport,
        signing_key: str,
        *,
        account_sid: str = ACCOUNT_SID,
        send_twice: bool = False,
        on_request: Callable[[str, float], None] | None = None,
    ) -> None:
        self.transport = transport
        self.signing_key = signing_key
        self.account_sid = account_sid
        self.send_twice = send_twice  # as Twilio does when our answer is slow: a retry
        self.on_request = on_request

    def _post(self, transcript: Transcript, url: str, params: dict[str, str]) -> str:
        headers = {HEADER: sign(self.signing_key, url, params)}
        transcript.requests += 1
        body = self.transport.post(url, params, headers)
        if self.send_twice:
            again = self.transport.post(url, params, headers)
            if again != body:
                transcript.lines.append(f"NOTE: the repeated request answered differently: {url}")
        return body

    def _params(self, sid: str, request: CallRequest, status: str, **extra: str) -> dict[str, str]:
        return {
            "CallSid": sid,
            "AccountSid": self.account_sid,
            "From": request.from_,
            "To": request.to,
            "Direction": "outbound-api",
            "CallStatus": status,
            **extra,
        }

    def status(self, sid: str, request: CallRequest, status: str, **extra: str) -> None:
        transcript = Transcript(sid)
        self._post(transcript, request.status_callback, self._params(sid, request, status, **extra))

    def unanswered(self, sid: str, request: CallRequest, status: str) -> Transcript:
        """A call nobody took: ringing, then `status` (busy, no-answer, failed)."""
        transcript = Transcript(sid, status=status)
        transcript.lines.append(f"CALL {request.to}: {status}")
        self._post(transcript, request.status_callback, self._params(sid, request, "ringing"))
        self._post(transcript, request.status_callback, self._params(sid, request, status))
        return transcript

    def play(
        self,
        sid: str,
        request: CallRequest,
        keys: KeySource,
        *,
        answered_by: str | None = "human",
        max_requests: int = 100,
    ) -> Transcript:
        """Answer the call and follow our TwiML until it hangs up (or the customer does)."""
        transcript = Transcript(sid)
        transcript.lines.append(f"CALL {request.to}: answered by {answered_by or 'someone'}")
        base = self._params(sid, request, "in-progress")
        extra = {"AnsweredBy": answered_by} if answered_by and request.machine_detection else {}
        base = {**base, **extra}
        self._post(transcript, request.status_callback, self._params(sid, request, "ringing"))
        self._post(transcript, request.status_callback, base)
        twiml: str | None = self._post(transcript, request.url, base)
        seconds = 0
        while twiml is not None and transcript.requests < max_requests:
            twiml, spent = self._run(transcript, base, twiml, keys)
            seconds += spent
        duration = str(max(seconds, 1))
        completed = {**base, "CallStatus": "completed", "CallDuration": duration}
        self._post(transcript, request.status_callback, completed)
        transcript.status = "completed"
        return transcript

    def _run(
        self, transcript: Transcript, base: dict[str, str], twiml: str, keys: KeySource
    ) -> tuple[str | None, int]:
        """Execute one TwiML document; the next document (None: the call ended), seconds."""
        root = ET.fromstring(twiml)
        if root.tag != "Response":
            raise ValueError(f"not TwiML: <{root.tag}>")
        seconds = 0
        for verb in root:
            if verb.tag == "Say":
                transcript.lines.append(f"SAY: {verb.text or ''}")
                seconds += 3
            elif verb.tag == "Pause":
                seconds += int(verb.get("length", "1"))
            elif verb.tag == "Hangup":
                transcript.lines.append("HANGUP")
                return None, seconds
            elif verb.tag == "Redirect":
                return self._post(transcript, (verb.text or "").strip(), base), seconds
            elif verb.tag == "Gather":
                texts = tuple(child.text or "" for child in verb if child.tag == "Say")
                for text in texts:
                    transcript.lines.append(f"SAY: {text}")
                seconds += 3 * len(texts) + 2
                num = verb.get("numDigits")
                prompt = GatherPrompt(
                    texts=texts,
                    num_digits=int(num) if num else None,
                    finish_on_key=verb.get("finishOnKey", "#") if not num else None,
                )
                pressed = keys(prompt)
                if pressed == HANG_UP:
                    transcript.lines.append("CUSTOMER HUNG UP")
                    transcript.hung_up_by_customer = True
                    return None, seconds
                digits = pressed
                finished = ""
                finish = prompt.finish_on_key
                if finish and digits.endswith(finish):
                    digits, finished = digits[: -len(finish)], finish
                if not digits and not finished:
                    transcript.lines.append("KEYS: (none)")
                    continue  # no input: on to the next verb
                transcript.lines.append(f"KEYS: {pressed}")
                action = verb.get("action", "")
                params = {**base, "Digits": digits, "FinishedOnKey": finished}
                return self._post(transcript, action, params), seconds
            else:
                raise ValueError(f"the simulator does not know <{verb.tag}>")
        return None, seconds  # the document ran out: Twilio hangs up


class SimulatedTelephony:
    """The provider without a Twilio account: each placed call is played in the background
    against our own webhooks, by a customer who answers with random keys — or is busy, does
    not answer, or has an answering machine."""

    provider = TelephonyProvider.SIMULATOR

    def __init__(
        self,
        *,
        signing_key: str,
        transport: Transport | None = None,
        seed: int | None = None,
        busy_share: float = 0.1,
        no_answer_share: float = 0.1,
        machine_share: float = 0.05,
        play: bool = True,
        workers: int = 4,
    ) -> None:
        self.player = CallPlayer(transport or UrllibTransport(), signing_key)
        self.rng = random.Random(seed)
        self.shares = (busy_share, no_answer_share, machine_share)
        self.play = play
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sim-call")
        # The latest calls and failures only: a simulator left running for days (the demo's
        # scheduler) must not grow without bound.
        self.placed: collections.deque[tuple[str, CallRequest]] = collections.deque(maxlen=1000)
        self.errors: collections.deque[str] = collections.deque(maxlen=1000)

    def place_call(self, request: CallRequest) -> PlacedCall:
        sid = "CA" + uuid.uuid4().hex
        with self._lock:
            self.placed.append((sid, request))
            seed = self.rng.random()
        if self.play:
            self._executor.submit(self._play, sid, request, seed)
        return PlacedCall(sid=sid, status="queued")

    def fetch_call(self, sid: str) -> ProviderCall:
        raise TelephonyError(f"the simulator keeps no record of call {sid}")

    def _play(self, sid: str, request: CallRequest, seed: float) -> None:
        busy, no_answer, machine = self.shares
        rng = random.Random(seed)
        try:
            if seed < busy:
                self.player.unanswered(sid, request, "busy")
            elif seed < busy + no_answer:
                self.player.unanswered(sid, request, "no-answer")
            elif seed < busy + no_answer + machine:
                self.player.play(sid, request, RandomKeys(rng), answered_by="machine_start")
            else:
                self.player.play(sid, request, RandomKeys(rng), answered_by="human")
        except Exception as exc:  # a simulated call that broke is logged, never raised
            log.warning("simulated call %s broke: %s", sid, exc)
            with self._lock:
                self.errors.append(f"{sid}: {exc}")

    def wait(self) -> None:
        """Let the calls being played finish (the CLI and tests)."""
        self._executor.shutdown(wait=True)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sim-call")
