"""State changes of the people who use the console (STYLE: services)."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from console.roles import ADMIN, ROLES, roles_ensure
from escalations.audit import Actor, audit_record, audited_transaction
from escalations.errors import Conflict, InvalidInput


def _new_password() -> str:
    # 16 url-safe characters: ~96 random bits, and easy to paste from a terminal.
    return secrets.token_urlsafe(12)


@audited_transaction()
def user_create(
    *,
    username: str,
    role: str,
    password: str | None = None,
    email: str = "",
    actor: Actor | None = None,
) -> tuple[AbstractUser, str]:
    """Create a console user in exactly one role; returns the user and their password.

    When no password is given one is generated; it is returned here and never stored in
    clear, so the caller must show it now.
    """
    username = username.strip()
    if not username:
        raise InvalidInput(
            "A user needs a username.", errors=[{"field": "username", "message": "required"}]
        )
    if role not in ROLES:
        raise InvalidInput(
            f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.",
            errors=[{"field": "role", "message": f"one of {', '.join(ROLES)}"}],
        )
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(f"A user named {username!r} exists already.")

    password = password or _new_password()
    user = User(username=username, email=email, is_staff=role == ADMIN)
    user.set_password(password)
    try:
        user.full_clean()
    except ValidationError as exc:
        raise InvalidInput(
            "The user is not valid: "
            + "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()),
            errors=[
                {"field": field, "message": " ".join(msgs)}
                for field, msgs in exc.message_dict.items()
            ],
        ) from None
    try:
        with audited_transaction():
            user.save()
    except IntegrityError:
        raise Conflict(f"A user named {username!r} exists already.") from None

    groups = roles_ensure()
    user.groups.set([groups[role]])
    audit_record(
        actor=actor or Actor.system("cli"),
        verb="user.created",
        obj=user,
        data={"username": username, "role": role, "email": email, "is_staff": user.is_staff},
    )
    return user, password
