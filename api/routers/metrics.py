"""Prometheus metrics: the queue by type and state, at-risk and overdue counts, and the
scheduler's job durations and failures (when it runs in this process)."""

from fastapi import APIRouter, Response
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api.deps import NowDep, UowDep
from callcenter.reports.service import queue_figures

router = APIRouter(tags=["monitoring"])


@router.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response)
def metrics(uow: UowDep, now: NowDep) -> Response:
    figures = queue_figures(uow, now=now)
    registry = CollectorRegistry()
    depth = Gauge(
        "callcenter_queue_depth",
        "Open callbacks by type and state.",
        ["type", "status"],
        registry=registry,
    )
    for (kind, status), count in sorted(figures.depth.items()):
        depth.labels(kind, status).set(count)
    Gauge("callcenter_callbacks_at_risk", "Open callbacks flagged at risk.", registry=registry).set(
        figures.at_risk
    )
    Gauge(
        "callcenter_callbacks_overdue", "Open callbacks past their target.", registry=registry
    ).set(figures.overdue)
    Gauge("callcenter_work_orders_open", "Open work orders.", registry=registry).set(
        figures.open_work_orders
    )
    Gauge("callcenter_work_orders_overdue", "Open work orders past due.", registry=registry).set(
        figures.overdue_work_orders
    )
    body = generate_latest(registry) + generate_latest(REGISTRY)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
