"""Dependencies: the settings, a unit of work, the clock's `now`, and the current user.

They are `async def` because none of them waits on anything (a token already known is read
from a cache): FastAPI runs a plain `def` dependency in a worker thread, and handing a request
over to a thread and back costs more than any of these does, several times per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ParamSpec, TypeVar

import anyio.to_thread
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from callcenter.audit.rules import Actor
from callcenter.callbacks.hotpath import HotPath, HotPathUnavailable
from callcenter.callbacks.schemas import AttemptCreate, AttemptRecorded, ClaimRead
from callcenter.callbacks.service import claim_next, record_attempt
from callcenter.clock import Clock
from callcenter.config import RulesConfig, Settings
from callcenter.db import Database, UnitOfWork
from callcenter.users.models import User, UserRole
from callcenter.users.service import hash_token, user_for_token

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer cc_…`")


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def database_of(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def uow_of(request: Request) -> UnitOfWork:
    return database_of(request).uow()


def clock_of(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


async def get_settings(request: Request) -> Settings:
    return settings_of(request)


async def get_database(request: Request) -> Database:
    return database_of(request)


async def get_uow(request: Request) -> UnitOfWork:
    return uow_of(request)


async def get_clock(request: Request) -> Clock:
    return clock_of(request)


async def get_now(clock: Annotated[Clock, Depends(get_clock)]) -> datetime:
    return clock.now()


# The agents' claims and attempts that the PostgreSQL hot path does not take (all of them on
# SQLite) run their database work on a few worker threads of their own. Few, because the
# threads share one interpreter lock and contend for it: with 50 agents claiming and recording
# against one worker (bench/bench_claims.py), the server's CPU per claim and attempt was
# 8.5 ms with 20 threads, 5.1 ms with 6, 4.6 ms with 4 and 4.1 ms with 3; 1 thread leaves the
# worker waiting on PostgreSQL (0.7 of a core used). Of their own, so that a claim never
# queues behind an intake batch or a manager's export.
HOT_PATH_THREADS = 3
_hot_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)

_P = ParamSpec("_P")
_T = TypeVar("_T")


async def run_hot(fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run `fn` on one of the agents' hot path's worker threads: at most `HOT_PATH_THREADS`
    at once, the other requests wait for one in memory."""
    loop = asyncio.get_running_loop()
    limiter = _hot_limiters.get(loop)
    if limiter is None:
        limiter = _hot_limiters[loop] = anyio.CapacityLimiter(HOT_PATH_THREADS)
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=limiter)


SettingsDep = Annotated[Settings, Depends(get_settings)]
UowDep = Annotated[UnitOfWork, Depends(get_uow)]
NowDep = Annotated[datetime, Depends(get_now)]


class TokenCache:
    """Users by token hash for a few seconds, so that a burst of requests does not look the
    same token up in the database each time. A revoked token or a disabled user stops working
    within `ttl` seconds in every process."""

    def __init__(self, ttl: float = 30.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._users: dict[str, tuple[float, User]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> User | None:
        key = hash_token(token)
        with self._lock:
            hit = self._users.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return None
        return hit[1]

    def put(self, token: str, user: User) -> None:
        with self._lock:
            if len(self._users) >= self.size:
                self._users.clear()
            self._users[hash_token(token)] = (time.monotonic(), user)


async def get_current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    return await authenticate(request, credentials)


async def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> User:
    """The user whose API token the request carries; 401 without one or with a wrong one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "an API token is required: send `Authorization: Bearer <token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    cache: TokenCache = request.app.state.token_cache
    user = cache.get(credentials.credentials)
    if user is None:
        # Only a token not seen lately goes to the database, in a worker thread.
        user = await run_in_threadpool(
            user_for_token, uow_of(request), token=credentials.credentials
        )
        if user is not None:
            cache.put(credentials.credentials, user)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the API token is not valid (unknown, revoked, or its user is disabled)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def client_address(request: Request) -> str | None:
    """The client's address as uvicorn gives it: behind a proxy it trusts (its
    `--forwarded-allow-ips`), the forwarded client's, else the peer's."""
    return request.client.host if request.client else None


async def get_actor(request: Request, user: CurrentUser) -> Actor:
    """Who calls and from where, for the audit trail (rule SV-4). The user is the one the
    route's role check already read (FastAPI resolves it once per request); async, as it does
    no I/O: no hop to a worker thread."""
    return Actor.of(user, address=client_address(request))


ActorDep = Annotated[Actor, Depends(get_actor)]


def require_roles(*roles: UserRole) -> Callable[[User], Coroutine[Any, Any, User]]:
    """A dependency that lets only users with one of `roles` through (403 otherwise)."""
    allowed = frozenset(roles)

    async def check(user: CurrentUser) -> User:
        return ensure_role(user, allowed)

    return check


def ensure_role(user: User, allowed: frozenset[UserRole]) -> User:
    """`user`, if their role is one of `allowed`; 403 otherwise."""
    if user.role not in allowed:
        names = ", ".join(sorted(allowed))
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"your role ({user.role}) may not do this; it needs one of: {names}",
        )
    return user


# What any authenticated endpoint may answer besides its own responses (for the OpenAPI).
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No API token, or a wrong one."},
    403: {"description": "Your role may not do this."},
}

CALLERS = (UserRole.AGENT, UserRole.SUPERVISOR, UserRole.RETENTION_LEAD)
READERS = (*CALLERS, UserRole.MANAGER, UserRole.ADMIN)
INTEGRATIONS = (UserRole.SYSTEM, UserRole.ADMIN)
OVERSEERS = (UserRole.SUPERVISOR, UserRole.RETENTION_LEAD, UserRole.MANAGER, UserRole.ADMIN)
MANAGERS = (UserRole.MANAGER, UserRole.ADMIN)

_CALLERS = frozenset(CALLERS)
Caller = Annotated[User, Depends(require_roles(*CALLERS))]
Reader = Annotated[User, Depends(require_roles(*READERS))]
Integration = Annotated[User, Depends(require_roles(*INTEGRATIONS))]
Overseer = Annotated[User, Depends(require_roles(*OVERSEERS))]
Managers = Annotated[User, Depends(require_roles(*MANAGERS))]
# Who may act on the queue for others: reassign a callback, release a lease.
SUPERVISING = (UserRole.SUPERVISOR, UserRole.RETENTION_LEAD, UserRole.ADMIN)
Supervising = Annotated[User, Depends(require_roles(*SUPERVISING))]


@dataclass(frozen=True, slots=True)
class AgentCall:
    """What the agents' hot endpoints need, resolved as one dependency: each dependency
    FastAPI resolves costs the request some CPU, and these run hundreds of times a second.
    On PostgreSQL (`hot`), the claim and the plain attempt run on the event loop
    (`callcenter.callbacks.hotpath`); otherwise, and for any other attempt, the services run
    on the hot path's worker threads."""

    uow: UnitOfWork
    now: datetime
    rules: RulesConfig
    agent: User
    actor: Actor
    hot: HotPath | None

    async def claim(self) -> ClaimRead | None:
        if self.hot is not None:
            with contextlib.suppress(HotPathUnavailable):
                return await self.hot.claim(
                    agent=self.agent, now=self.now, config=self.rules, actor=self.actor
                )
        return await run_hot(
            claim_next,
            self.uow,
            agent=self.agent,
            now=self.now,
            config=self.rules,
            actor=self.actor,
        )

    async def record_attempt(self, callback_id: int, attempt: AttemptCreate) -> AttemptRecorded:
        if self.hot is not None:
            with contextlib.suppress(HotPathUnavailable):
                recorded = await self.hot.record_attempt(
                    callback_id=callback_id,
                    agent=self.agent,
                    attempt=attempt,
                    now=self.now,
                    config=self.rules,
                    actor=self.actor,
                )
                if recorded is not None:
                    return recorded
        return await run_hot(
            record_attempt,
            self.uow,
            callback_id=callback_id,
            agent=self.agent,
            attempt=attempt,
            now=self.now,
            config=self.rules,
            actor=self.actor,
        )


async def get_agent_call(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AgentCall:
    # The token and the role are checked here as `Caller` checks them, without its two
    # dependencies of its own: FastAPI's cost per dependency counts at hundreds of requests a
    # second. The bearer scheme stays a dependency, so the OpenAPI is the same.
    agent = ensure_role(await authenticate(request, credentials), _CALLERS)
    return AgentCall(
        uow=uow_of(request),
        now=clock_of(request).now(),
        rules=settings_of(request).rules,
        agent=agent,
        actor=await get_actor(request, agent),
        hot=getattr(request.app.state, "hot_path", None),
    )


AgentCallDep = Annotated[AgentCall, Depends(get_agent_call)]
