"""`{% presence_switch %}`: the top bar's online / away / offline switch for people on the
roster (nothing for anyone else)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from routing import selectors
from routing.models import ReviewerProfile
from routing.rendering import presence_switch as render_switch
from routing.selectors import PresenceState, ShiftLine

register = template.Library()


@register.simple_tag(takes_context=True)
def presence_switch(context: template.Context) -> str:
    """Rendered by its own template (so escaped there): a SafeString, or ""."""
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return ""
    request = context.get("request")
    return render_switch(
        user=user,
        csrf_token=str(context.get("csrf_token", "")),
        next_url=request.get_full_path() if request is not None else "",
    )


@register.filter
def shift_lines(profile: ReviewerProfile) -> list[ShiftLine]:
    return selectors.shift_lines(profile.shifts.all())


@register.filter
def weekly_hours(profile: ReviewerProfile) -> str:
    hours = selectors.weekly_minutes(profile.shifts.all()) / 60
    return f"{hours:g}"


@register.filter
def presence_state(profile: ReviewerProfile) -> PresenceState:
    return selectors.presence_of(profile, timezone.now())


@register.filter
def person(user: Any) -> str:
    """A user's name as the console shows it; a dash for nobody."""
    return selectors.display_name(user) if user is not None else "\u2014"
