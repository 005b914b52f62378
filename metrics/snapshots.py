"""Long periods from the background: the metric tables of the last 30, 90 and 365 days,
computed by a beat task and shown with the time they were computed.

Aggregating a month of a million-case year takes over half a second and the whole year
seconds, however the SQL is written: every metric reads every case of the period. Someone
looking at a month does not need its last minutes, and the last 7 days stay live for
what is happening now; so the long periods are computed every `BATON_METRICS_SNAPSHOT_MINUTES`
for each filter the page offers on its own (all, each task type, each team), and the
page reads the result. Combinations (a task type and a team), and a snapshot older than
twice the interval (beat stopped), fall back to computing live. The queries are the same
`metrics_all`: a snapshot is a stored answer, not a second way of computing it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from escalations.models import TaskType
from metrics.models import MetricSnapshot
from metrics.queries import METRICS, Column, MetricFilter, MetricTable, metrics_all
from routing.models import Team

PERIODS: dict[str, timedelta] = {
    "7": timedelta(days=7),
    "30": timedelta(days=30),
    "90": timedelta(days=90),
    "365": timedelta(days=365),
}
SNAPSHOT_PERIODS = ("30", "90", "365")


@dataclass(frozen=True)
class MetricsAnswer:
    tables: list[MetricTable]
    filter: MetricFilter
    computed_at: datetime | None  # set when the tables come from a snapshot


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def _table_data(table: MetricTable) -> dict[str, Any]:
    return {
        "key": table.key,
        "title": table.title,
        "columns": [[c.key, c.label, c.kind] for c in table.columns],
        "rows": [{k: _plain(v) for k, v in row.items()} for row in table.rows],
        "chart": table.chart,
        "label": table.label,
    }


def _table_from(data: dict[str, Any]) -> MetricTable:
    return MetricTable(
        key=data["key"],
        title=data["title"],
        columns=[Column(*c) for c in data["columns"]],
        rows=data["rows"],
        chart=data["chart"],
        label=data["label"],
    )


def _max_age() -> timedelta:
    return timedelta(minutes=2 * settings.BATON_METRICS_SNAPSHOT_MINUTES)


def metric_snapshots_refresh(*, now: datetime | None = None) -> int:
    """Compute and store every snapshot (each long period: all cases, each task type,
    each team); returns how many. Run by beat, one run at a time."""
    now = now or timezone.now()
    filters: list[tuple[str, str]] = [("", "")]
    filters += [
        (slug, "") for slug in TaskType.objects.order_by("slug").values_list("slug", flat=True)
    ]
    filters += [("", slug) for slug in Team.objects.order_by("slug").values_list("slug", flat=True)]
    count = 0
    for period in SNAPSHOT_PERIODS:
        for task_type, team in filters:
            metric_filter = MetricFilter(
                start=now - PERIODS[period],
                end=now,
                task_type=task_type or None,
                team=team or None,
            )
            began = time.perf_counter()
            tables = metrics_all(metric_filter)
            MetricSnapshot.objects.update_or_create(
                period=period,
                task_type=task_type,
                team=team,
                defaults={
                    "start": metric_filter.start,
                    "end": metric_filter.end,
                    "seconds": time.perf_counter() - began,
                    "tables": [_table_data(t) for t in tables],
                },
            )
            count += 1
    # Filters that no longer exist (a team removed) are not shown again.
    MetricSnapshot.objects.filter(end__lt=now - _max_age()).delete()
    return count


def metrics_for_period(
    *,
    period: str,
    task_type: str | None = None,
    team: str | None = None,
    only: str | None = None,
    now: datetime | None = None,
) -> MetricsAnswer:
    """The page's tables (or the one named `only`, a key of METRICS, for its CSV): from a
    fresh snapshot when the period has them, else computed now."""
    now = now or timezone.now()
    if period in SNAPSHOT_PERIODS and not (task_type and team):
        snapshot = MetricSnapshot.objects.filter(
            period=period,
            task_type=task_type or "",
            team=team or "",
            end__gte=now - _max_age(),
        ).first()
        if snapshot is not None:
            return MetricsAnswer(
                tables=[_table_from(t) for t in snapshot.tables if only in (None, t["key"])],
                filter=MetricFilter(
                    start=snapshot.start, end=snapshot.end, task_type=task_type, team=team
                ),
                computed_at=snapshot.end,
            )
    metric_filter = MetricFilter(
        start=now - PERIODS[period], end=now, task_type=task_type, team=team
    )
    tables = [METRICS[only](metric_filter)] if only else metrics_all(metric_filter)
    return MetricsAnswer(tables=tables, filter=metric_filter, computed_at=None)
