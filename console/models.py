from __future__ import annotations

from django.conf import settings
from django.db import models


class CaseViewer(models.Model):
    """One open console tab looking at a case; several processes share the table."""

    escalation = models.ForeignKey(
        "escalations.Escalation", on_delete=models.CASCADE, related_name="viewers"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    channel_name = models.CharField(max_length=200, unique=True)
    last_seen = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["escalation", "last_seen"], name="viewer_case")]

    def __str__(self) -> str:
        return f"{self.user} on #{self.escalation_id}"
