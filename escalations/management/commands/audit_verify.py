"""Verify the audit trail's hash chain; exits non-zero at the first broken link."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from escalations.audit import audit_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain and report the first broken link."

    def handle(self, *args: Any, **options: Any) -> None:
        count, first_break = audit_verify()
        if first_break is not None:
            raise CommandError(
                f"BROKEN at event {first_break.seq}: {first_break.problem} "
                f"({count} events in the trail)"
            )
        self.stdout.write(self.style.SUCCESS(f"OK: {count} events verified"))
