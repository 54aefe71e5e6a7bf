"""Liveness and readiness for load balancers and the container's health check."""

import logging

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse

from api.deps import database_of

router = APIRouter(tags=["health"])
log = logging.getLogger("callcenter.api")


@router.get("/healthz", summary="Is the service up and its database reachable?")
def healthz(request: Request) -> JSONResponse:
    try:
        with database_of(request).engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return JSONResponse(
            status_code=503,
            content={"status": "unavailable", "database": str(exc.__cause__ or exc)},
        )
    return JSONResponse(content={"status": "ok", "database": "ok"})


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/console/")
