from __future__ import annotations

import json
from typing import Any

from django import template
from django.core.serializers.json import DjangoJSONEncoder

register = template.Library()


@register.filter
def as_json(value: Any, indent: int | None = None) -> str:
    """JSON text for display (escaped by the template like any other string)."""
    return json.dumps(
        value, ensure_ascii=False, sort_keys=True, indent=indent, cls=DjangoJSONEncoder
    )
