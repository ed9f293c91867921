"""Health and Prometheus metrics, read from the database so every API process reports the same."""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from api_server.auth import CHALLENGE, Caller, MaybeCallerDep, bearer_token, identify
from api_server.deps import SettingsDep, StoreDep
from api_server.schemas import Health, Message, WorkerView
from api_server.views import timestamp
from shared.config import Settings
from shared.models import Histogram, QueueStats
from shared.store import Store

router = APIRouter()


def read_stats(store: Store, settings: Settings) -> QueueStats:
    # A worker counts as live while it would still hold a lease: it beats several times per lease
    # (by the database's clock, as its heartbeats are stamped).
    return store.stats(live_within=settings.lease_seconds)


@router.get(
    "/health",
    response_model=Health,
    response_model_exclude_none=True,
    summary="Database reachability, queue depth and live workers",
    responses={503: {"model": Message, "description": "The database cannot be reached."}},
)
def health(store: StoreDep, settings: SettingsDep, caller: MaybeCallerDep) -> Health:
    """Without an accepted key (once the service has keys), only `status` and `database`."""
    if caller is None:
        return Health(status="ok", database="ok")
    stats = read_stats(store, settings)
    return Health(
        status="ok",
        database="ok",
        queue=stats.counts,
        workers=[
            WorkerView(
                worker_id=w.id,
                host=w.host,
                pid=w.pid,
                started_at=timestamp(w.started_at),
                last_heartbeat=timestamp(w.last_heartbeat),
                task_id=w.task_id,
            )
            for w in stats.workers
        ],
    )


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    buckets = [("+Inf" if le == float("inf") else repr(float(le)), count) for le, count in histogram.buckets]
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.total)


class QueueCollector:
    """A prometheus-client collector that reads the shared database at scrape time."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings

    def collect(self) -> Iterator[Metric]:
        stats = read_stats(self.store, self.settings)
        tasks = GaugeMetricFamily("qtq_tasks", "Tasks in the database by state.", labels=["state"])
        for state, count in stats.counts.items():
            tasks.add_metric([state.value], count)
        yield tasks
        yield CounterMetricFamily("qtq_tasks_submitted", "Tasks accepted with 202.", value=stats.submitted_total)
        finished = CounterMetricFamily("qtq_tasks_finished", "Tasks that reached a final state.", labels=["outcome"])
        for state, count in stats.finished_total.items():
            finished.add_metric([state.value], count)
        yield finished
        yield _histogram("qtq_task_queue_wait_seconds", "Time from submission to a worker's claim.", stats.queue_wait)
        yield _histogram("qtq_task_run_seconds", "Time from claim to completed or failed.", stats.run_time)
        yield GaugeMetricFamily(
            "qtq_workers_live", "Workers heard from within LEASE_SECONDS.", value=len(stats.workers)
        )


def metrics_registry(store: Store, settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(store, settings))  # type: ignore[arg-type]
    return registry


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format."},
        401: {"model": Message, "description": "No admin key and no METRICS_TOKEN."},
        403: {"model": Message, "description": "A key that is not an admin key."},
        503: {"model": Message, "description": "The database cannot be reached."},
    },
)
def metrics(request: Request, store: StoreDep, settings: SettingsDep) -> Response:
    """For an admin key, or METRICS_TOKEN; open while the service has no keys and no METRICS_TOKEN."""
    token = bearer_token(request)
    by_token = (
        settings.metrics_token is not None
        and token is not None
        and hmac.compare_digest(token.encode(), settings.metrics_token.encode())
    )
    if not by_token:
        caller = identify(store, token)
        if not isinstance(caller, Caller):
            raise HTTPException(401, caller, headers=CHALLENGE)
        if caller.open and settings.metrics_token is not None:
            raise HTTPException(401, "/metrics needs METRICS_TOKEN as Authorization: Bearer <token>", headers=CHALLENGE)
        if not caller.sees_all:
            raise HTTPException(403, "/metrics needs an admin key or METRICS_TOKEN")
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
