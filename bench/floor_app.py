"""Minimal apps for `bench.bench_floor`: what uvicorn, Starlette and FastAPI cost a request
before any work of ours. Each answers `POST /claim` with the same body, about the size of a
claim's answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.deps import run_hot


class Callback(BaseModel):
    id: int
    type: str
    status: str
    due_at: str
    hard_due_at: str
    attempt_count: int
    claimed_by: str | None
    assigned_agent: str | None


class Answer(BaseModel):
    claim_id: str
    lease_expires_at: str
    callbacks: list[Callback]
    customer: dict[str, str | None]


ANSWER = Answer(
    claim_id="4d0c4a47-7d0e-4b8a-9f5e-0a1b2c3d4e5f",
    lease_expires_at="2026-11-25T10:15:00Z",
    callbacks=[
        Callback(
            id=123456,
            type="install",
            status="claimed",
            due_at="2026-11-25T09:00:00Z",
            hard_due_at="2026-11-27T09:00:00Z",
            attempt_count=0,
            claimed_by="agent001",
            assigned_agent=None,
        )
    ],
    customer={
        "id": "BC-123456",
        "name": "Customer 123456",
        "title": None,
        "phone": "+8613800123456",
        "phone_masked": "138****3456",
        "timezone": "Asia/Shanghai",
        "region": None,
    },
)
BODY = ANSWER.model_dump(mode="json")


async def _starlette_claim(request: Request) -> JSONResponse:
    return JSONResponse(BODY)


starlette_app = Starlette(routes=[Route("/claim", _starlette_claim, methods=["POST"])])

fastapi_app = FastAPI()
_bearer = HTTPBearer(auto_error=False)


@fastapi_app.post("/claim")
async def _fastapi_claim(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Answer:
    return ANSWER


fastapi_thread_app = FastAPI()


def _work() -> Answer:
    return ANSWER


@fastapi_thread_app.post("/claim")
async def _fastapi_thread_claim(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Answer:
    return await run_hot(_work)
