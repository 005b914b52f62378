"""Counters the metrics need that no other table holds."""

from __future__ import annotations

from django.db import models


class EvaluationTally(models.Model):
    """How many times an agent asked /evaluate, per day and task type.

    Counting only: /evaluate stores nothing else, so this is the denominator of the handoff
    rate (asked against handed off) and nothing more.
    """

    day = models.DateField()
    integration = models.ForeignKey(
        "escalations.Integration", on_delete=models.CASCADE, related_name="+"
    )
    task_type = models.ForeignKey(
        "escalations.TaskType", on_delete=models.CASCADE, related_name="+"
    )
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "integration", "task_type"], name="evaluation_tally_once"
            )
        ]
        indexes = [models.Index(fields=["task_type", "day"], name="evaluation_tally_type_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.task_type_id}: {self.count}"


class MetricSnapshot(models.Model):
    """Every metric table for one long period and filter, computed in the background.

    A year of a million cases takes seconds to aggregate, too long for a page; the
    periods in `metrics.snapshots.SNAPSHOT_PERIODS` are computed by a beat task and the
    page shows the latest, saying when it was computed. The last 7 days are always live.
    """

    period = models.CharField(max_length=8)  # a key of metrics.rendering.PERIODS
    task_type = models.CharField(max_length=64, blank=True)  # a slug, or "" for all
    team = models.CharField(max_length=64, blank=True)  # a slug, or "" for all
    start = models.DateTimeField()
    end = models.DateTimeField()  # when it was computed: the period ends then
    seconds = models.FloatField()  # how long computing it took
    tables = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["period", "task_type", "team"], name="metric_snapshot_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.period} days {self.task_type or 'all'}/{self.team or 'all'} at {self.end}"
