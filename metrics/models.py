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
