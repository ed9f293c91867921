"""Health and Prometheus metrics, read from the database so every API process reports the same."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

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
def health(store: StoreDep, settings: SettingsDep) -> Health:
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
        503: {"model": Message, "description": "The database cannot be reached."},
    },
)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
