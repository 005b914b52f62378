"""Celery tasks of the metrics: thin drivers of metrics.snapshots."""

from __future__ import annotations

from celery import shared_task

from metrics.snapshots import metric_snapshots_refresh


@shared_task(name="metrics.refresh_snapshots", ignore_result=True)
def refresh_snapshots() -> int:
    """Recompute the metrics page's long periods (beat, every BATON_METRICS_SNAPSHOT_MINUTES)."""
    return metric_snapshots_refresh()
