"""`manage.py create_integration NAME [--callback-url URL]`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from escalations import services
from escalations.errors import BatonError


class Command(BaseCommand):
    help = "Register an AI agent integration and print its API token (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--callback-url", default="", help="Default webhook URL for decisions.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            integration, token = services.integration_create(
                name=options["name"], callback_url=options["callback_url"]
            )
        except BatonError as exc:
            raise CommandError(exc.describe()) from exc
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(self.style.SUCCESS(f"Created integration {integration.name!r}."))
        self.stdout.write(f"  token:          {token}")
        self.stdout.write(f"  webhook secret: {integration.webhook_secret}")
        self.stdout.write(
            self.style.WARNING(
                "The token is not stored: Baton keeps only its hash, so this is the only time "
                "it is shown. Put it in the agent's secrets now; if it is lost, rotate it."
            )
        )
