"""Domain errors → HTTP errors with a message a person understands."""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from callcenter.callbacks.rules import CallBackTimeRefused, IllegalTransition
from callcenter.errors import Conflict, InvalidField, InvalidFields, NotFound, PermissionDenied
from callcenter.questionnaires.answers import InvalidAnswers

log = logging.getLogger("callcenter.api")

# How long a client should wait before trying again while the database is unreachable.
DATABASE_RETRY_AFTER_SECONDS = 5


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def _validation_detail(field: str, message: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "loc": ["body", *field.split(".")],
        "field": field,
        "msg": message,
        "type": kind,
        **extra,
    }


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = []
    for error in exc.errors():
        item = {key: error[key] for key in ("loc", "msg", "type") if key in error}
        item["field"] = _field(error.get("loc", ()))
        detail.append(item)
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content=jsonable_encoder({"detail": detail}),
    )


async def _invalid_field(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidField)
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": [_validation_detail(exc.field, exc.reason, "value_error")]},
    )


async def _invalid_fields(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidFields)
    detail = [_validation_detail(field, message, "value_error") for field, message in exc.problems]
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": detail}
    )


async def _call_back_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CallBackTimeRefused)
    zone = exc.zone
    windows = []
    for window in exc.valid:
        entry = {"opens": window.opens.isoformat(), "closes": window.closes.isoformat()}
        if zone:
            tz = ZoneInfo(zone)
            entry |= {
                "opens_local": window.opens.astimezone(tz).isoformat(),
                "closes_local": window.closes.astimezone(tz).isoformat(),
            }
        windows.append(entry)
    message = exc.reason
    if not windows:
        message += "; there is no calling window left before the hard limit"
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={
            "detail": [
                _validation_detail(
                    "call_back_at", message, "call_back_time_refused", next_valid_windows=windows
                )
            ]
        },
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    # A JSON body that is not UTF-8 fails before JSON parsing, as a bare 400; it is the same
    # mistake as malformed JSON (422 `json_invalid`), so it gets the same answer.
    if exc.status_code == status.HTTP_400_BAD_REQUEST and isinstance(
        exc.__cause__, UnicodeDecodeError
    ):
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={
                "detail": [
                    _validation_detail("body", "the body is not JSON text in UTF-8", "json_invalid")
                ]
            },
        )
    return await http_exception_handler(request, exc)


def _prefers_english(request: Request) -> bool:
    return request.headers.get("accept-language", "").lower().startswith("en")


async def _invalid_answers(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidAnswers)
    english = _prefers_english(request)
    detail = [
        _validation_detail(
            f"answers.{error.question_id}",
            error.message.en if english else error.message.zh,
            str(error.code),
            question_id=error.question_id,
            msg_zh=error.message.zh,
            msg_en=error.message.en,
        )
        for error in exc.errors
    ]
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": detail}
    )


def _simple(code: int) -> Any:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=code, content={"detail": str(exc)})

    return handler


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The database is down, restarting or out of connections: a passing condition, so the
    # client is told to come back (503 + Retry-After), not shown a server bug (500).
    log.warning("database unavailable for %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": "the database is unavailable for the moment; please try again shortly"},
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(InvalidField, _invalid_field)
    app.add_exception_handler(InvalidFields, _invalid_fields)
    app.add_exception_handler(CallBackTimeRefused, _call_back_refused)
    app.add_exception_handler(InvalidAnswers, _invalid_answers)
    app.add_exception_handler(NotFound, _simple(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(PermissionDenied, _simple(status.HTTP_403_FORBIDDEN))
    app.add_exception_handler(Conflict, _simple(status.HTTP_409_CONFLICT))
    app.add_exception_handler(IllegalTransition, _simple(status.HTTP_409_CONFLICT))
    # A lost or refused connection (PostgreSQL restarting), a dropped one, an exhausted pool.
    app.add_exception_handler(sa.exc.OperationalError, _database_unavailable)
    app.add_exception_handler(sa.exc.InterfaceError, _database_unavailable)
    app.add_exception_handler(sa.exc.TimeoutError, _database_unavailable)
