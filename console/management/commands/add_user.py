"""`manage.py add_user NAME --role reviewer|supervisor|admin [--password P]`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from console.roles import ROLES
from console.services import user_create
from escalations.errors import BatonError


class Command(BaseCommand):
    help = "Create a console user in one role and print the login and password."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--password", default=None, help="Generated when omitted.")
        parser.add_argument("--email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user, password = user_create(
                username=options["username"],
                role=options["role"],
                password=options["password"],
                email=options["email"],
            )
        except BatonError as exc:
            raise CommandError(exc.describe()) from exc
        self.stdout.write(self.style.SUCCESS(f"Created {options['role']} {user.username!r}."))
        self.stdout.write(f"  login:    {user.username}")
        self.stdout.write(f"  password: {password}")
