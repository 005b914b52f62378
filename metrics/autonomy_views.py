"""The earned-autonomy page: recommendations with their evidence, apply or dismiss (admins,
`escalations.manage_policy`, checked here and again by the services)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from console.views import ConsoleRequest
from escalations.audit import Actor
from escalations.errors import BatonError
from escalations.models import Level
from metrics.autonomy import Thresholds, autonomy_apply, autonomy_dismiss, autonomy_recommendations

manage_policy = permission_required("escalations.manage_policy", raise_exception=True)


@require_GET
@login_required
@manage_policy
def autonomy(request: HttpRequest) -> HttpResponse:
    context = {
        "recommendations": autonomy_recommendations(),
        "thresholds": Thresholds.from_settings(),
        "section": "autonomy",
    }
    return render(request, "metrics/autonomy.html", context)


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return -1


@require_POST
@login_required
@manage_policy
def autonomy_apply_view(request: ConsoleRequest) -> HttpResponse:
    try:
        task_type = autonomy_apply(
            task_type_id=_int(request.POST.get("task_type")),
            direction=request.POST.get("direction", ""),
            from_level=_int(request.POST.get("from_level")),
            actor=Actor.person(request.user),
        )
    except BatonError as error:
        messages.error(request, error.message)
    else:
        level = Level(task_type.level).label
        messages.success(request, f"{task_type.name} is now {level} (policy v{task_type.version}).")
    return redirect("autonomy")


@require_POST
@login_required
@manage_policy
def autonomy_dismiss_view(request: ConsoleRequest) -> HttpResponse:
    try:
        rec = autonomy_dismiss(
            task_type_id=_int(request.POST.get("task_type")),
            direction=request.POST.get("direction", ""),
            actor=Actor.person(request.user),
        )
    except BatonError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"Dismissed for {rec.task_type.name}: it returns once a fresh sample of evidence "
            "has arrived or the level changes.",
        )
    return redirect("autonomy")
