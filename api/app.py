"""The FastAPI application: `create_app()` wires settings, database, clock and routers."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from zoneinfo import ZoneInfo

import anyio.to_thread
from fastapi import Depends, FastAPI

from api.console import install_console
from api.deps import TokenCache
from api.errors import install_error_handlers
from api.params import refuse_nul
from api.routers import (
    audit,
    calendar,
    callbacks,
    events,
    forecast,
    health,
    ivr,
    metrics,
    questionnaires,
    reports,
    retention,
    twilio,
    workorders,
)
from callcenter.audit.rules import system_actor
from callcenter.audit.service import record_configuration
from callcenter.callbacks.hotpath import HotPath
from callcenter.clock import Clock, make_clock
from callcenter.config import Settings, get_settings
from callcenter.db import DB_POOL_SIZE, Database, upkeep_warnings
from callcenter.questionnaires.loader import ScriptSet, load_scripts, shipped_scripts
from callcenter.questionnaires.service import sync_scripts
from callcenter.workdays import WorkdayCalendar, calendar_warnings, log_warnings

log = logging.getLogger("callcenter.api")


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    clock: Clock | None = None,
    start_scheduler: bool | None = None,
    scripts: ScriptSet | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    # Loaded now, so that a broken script stops start-up with its file and line.
    scripts = scripts or (
        load_scripts(settings.scripts_dir) if settings.scripts_dir else shipped_scripts()
    )
    database = database or Database(settings.database_url)
    clock = clock or make_clock(settings)
    run_scheduler = settings.scheduler_enabled if start_scheduler is None else start_scheduler

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Synchronous endpoints run on anyio's worker threads: no more of them than pooled
        # database connections, so that requests queue in memory, not for a connection.
        anyio.to_thread.current_default_thread_limiter().total_tokens = DB_POOL_SIZE
        sync_scripts(database.uow(), scripts=scripts, now=clock.now())
        # rule SV-4: a configuration that differs from the last one recorded is audited.
        record_configuration(
            database.uow(), settings=settings, actor=system_actor("api"), now=clock.now()
        )
        today = clock.now().astimezone(ZoneInfo(settings.rules.default_timezone)).date()
        log_warnings(calendar_warnings(WorkdayCalendar(settings.rules.workdays), today=today))
        for warning in upkeep_warnings(database.engine):
            log.warning(warning)
        # What start-up built (modules, scripts, mappers) lives as long as the process: moved
        # out of the collector's sight, so that a full collection no longer walks it in the
        # middle of a request (measured: 65 ms pauses on the supervisor's board).
        gc.collect()
        gc.freeze()
        scheduler = None
        if run_scheduler:
            from scheduler.runner import build_scheduler

            scheduler = build_scheduler(database=database, clock=clock, settings=settings)
            scheduler.start()
            log.info("scheduler started in-process")
        if settings.hot_path and database.engine.dialect.name == "postgresql":
            # The claim and the plain attempt on this event loop's own connections.
            app.state.hot_path = HotPath(database)
        try:
            yield
        finally:
            if scheduler is not None:
                # The jobs under way finish first, as `callcenter scheduler` does on a signal.
                await anyio.to_thread.run_sync(lambda: scheduler.shutdown(wait=True))
            hot_path = getattr(app.state, "hot_path", None)
            if hot_path is not None:
                del app.state.hot_path
                await hot_path.close()

    app = FastAPI(
        title="callcenter",
        version="0.1.0",
        summary="The 10050 callback centre: callback queue, calling windows and attempts.",
        lifespan=lifespan,
        # Before any endpoint's own parsing: text with NUL fails on PostgreSQL only.
        dependencies=[Depends(refuse_nul)],
    )
    app.state.settings = settings
    app.state.database = database
    app.state.clock = clock
    app.state.scripts = scripts
    app.state.token_cache = TokenCache()
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(events.router)
    app.include_router(callbacks.router)
    app.include_router(questionnaires.router)
    app.include_router(workorders.router)
    app.include_router(retention.router)
    app.include_router(reports.router)
    app.include_router(calendar.router)
    app.include_router(forecast.router)
    app.include_router(metrics.router)
    app.include_router(audit.router)
    app.include_router(twilio.router)
    app.include_router(ivr.router)
    install_console(app)
    return app


def app_from_env() -> FastAPI:
    """The factory uvicorn calls (`--factory`): everything from the environment."""
    return create_app()
