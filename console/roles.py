"""Roles are Django groups with permissions (DESIGN §1). Each role includes the one below."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.db import transaction

REVIEWER = "reviewer"
SUPERVISOR = "supervisor"
ADMIN = "admin"
ROLES = (REVIEWER, SUPERVISOR, ADMIN)

_REVIEWER_PERMS = ["escalations.work_queue", "escalations.view_escalation"]
_SUPERVISOR_PERMS = [
    *_REVIEWER_PERMS,
    "escalations.view_all_escalations",
    "escalations.reassign_escalation",
    "escalations.view_audit",
]
_ADMIN_PERMS = [
    *_SUPERVISOR_PERMS,
    "escalations.manage_policy",
    "escalations.manage_integrations",
]
ROLE_PERMISSIONS = {REVIEWER: _REVIEWER_PERMS, SUPERVISOR: _SUPERVISOR_PERMS, ADMIN: _ADMIN_PERMS}


@transaction.atomic
def roles_ensure() -> dict[str, Group]:
    """Create or repair the role groups so each holds exactly its permissions."""
    groups = {}
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for dotted in perms:
            app_label, codename = dotted.split(".")
            wanted.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(wanted)
        groups[role] = group
    return groups


def roles_ensure_on_migrate(sender: Any, **kwargs: Any) -> None:
    # post_migrate is sent once per app; permissions exist for all of them only at the last.
    if sender.name == list(apps.get_app_configs())[-1].name:
        roles_ensure()
