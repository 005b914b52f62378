from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def change_of(changes: dict[str, Any], pk: Any) -> Any:
    """The latest audit event of an object, from `policy_admin.last_changes` (keys are ids)."""
    return changes.get(str(pk))
