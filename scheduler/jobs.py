"""Jobs: each opens a unit of work around one service call, and logs what it did."""

from __future__ import annotations

import logging
import time

from callcenter.callbacks.service import release_lapsed_claims
from callcenter.clock import Clock
from callcenter.db import Database

log = logging.getLogger("callcenter.scheduler")


def release_lapsed(database: Database, clock: Clock) -> int:
    """Callbacks whose lease lapsed go back to the queue."""
    started = time.perf_counter()
    count = release_lapsed_claims(database.uow(), now=clock.now())
    log.info("job=release_lapsed rows=%d seconds=%.3f", count, time.perf_counter() - started)
    return count
