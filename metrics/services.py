"""The one write the metrics make: counting /evaluate calls."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from escalations.models import Integration, TaskType
from metrics.models import EvaluationTally


def evaluation_tally_increment(*, integration: Integration, task_type: TaskType) -> None:
    """Add one to today's tally: an UPDATE … SET count = count + 1, a row created on the
    day's first call (a concurrent first call loses the insert and updates instead)."""
    key = {"day": timezone.localdate(), "integration": integration, "task_type": task_type}
    if EvaluationTally.objects.filter(**key).update(count=F("count") + 1):
        return
    try:
        with transaction.atomic():
            EvaluationTally.objects.create(**key, count=1)
    except IntegrityError:
        EvaluationTally.objects.filter(**key).update(count=F("count") + 1)
