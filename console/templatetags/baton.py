from __future__ import annotations

from django import template

register = template.Library()

TRIGGER_LABELS = {
    "low_confidence": "low confidence",
    "explicit_request": "asked for a person",
    "sentiment": "sentiment",
    "policy_rule": "policy rule",
    "repeated_failure": "repeated",
    "agent_requested": "agent asked",
    "timeout": "timeout",
}


@register.filter
def trigger_label(code: str) -> str:
    return TRIGGER_LABELS.get(code, code.replace("_", " "))


@register.filter
def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


@register.filter
def words(slug: str) -> str:
    """`gas_leak` → `gas leak`."""
    return str(slug).replace("_", " ")
