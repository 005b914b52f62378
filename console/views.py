"""Console pages. Thin: parse, call one selector or service, render (STYLE.md)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.models import User
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from console import rendering
from console.health import health_report
from escalations.decisions import escalation_accept, escalation_decide
from escalations.errors import BatonError, NotFound

work_queue = permission_required("escalations.work_queue", raise_exception=True)


class ConsoleRequest(HttpRequest):
    """A signed-in request through django-htmx's middleware (for the type checker)."""

    htmx: HtmxDetails
    user: User


class BatonLoginView(LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("login")


@require_GET
@login_required
@work_queue
def inbox(request: ConsoleRequest) -> HttpResponse:
    try:
        context = rendering.inbox_context(user=request.user, query=request.GET)
    except BatonError as error:
        return render(request, "console/error.html", {"error": error}, status=400)
    template = "console/inbox.html"
    if request.htmx and not request.htmx.boosted:
        template += "#rows"
    return render(request, template, context)


@require_GET
@login_required
@work_queue
def case_detail(request: ConsoleRequest, escalation_id: int) -> HttpResponse:
    try:
        context = rendering.case_context(user=request.user, escalation_id=escalation_id)
    except NotFound as error:
        raise Http404(error.message) from None
    return render(request, "console/case.html", context)


def _after_action(request: ConsoleRequest, escalation_id: int, html: str, ok: bool) -> HttpResponse:
    if request.htmx:
        return HttpResponse(html, status=200 if ok else 409)
    return redirect("case_detail", escalation_id=escalation_id)


def _version(request: HttpRequest) -> int:
    try:
        return int(request.POST.get("version", ""))
    except ValueError:
        return -1


@require_POST
@login_required
@work_queue
def case_accept(request: ConsoleRequest, escalation_id: int) -> HttpResponse:
    try:
        escalation_accept(
            escalation_id=escalation_id, reviewer=request.user, version=_version(request)
        )
    except BatonError as error:
        messages.error(request, error.message)
        return _after_action(request, escalation_id, rendering.error_notice(error), ok=False)
    messages.success(request, "Accepted: the case is yours.")
    return _after_action(request, escalation_id, rendering.notice("Accepted.", "success"), ok=True)


@require_POST
@login_required
@work_queue
def case_decide(request: ConsoleRequest, escalation_id: int) -> HttpResponse:
    data = rendering.decision_input(request.POST, version=_version(request))
    try:
        decision = escalation_decide(escalation_id=escalation_id, reviewer=request.user, data=data)
    except BatonError as error:
        messages.error(request, error.message)
        for problem in error.errors:
            messages.error(request, f"{problem['field']}: {problem['message']}")
        return _after_action(request, escalation_id, rendering.error_notice(error), ok=False)
    text = rendering.decided_message(decision)
    messages.success(request, text)
    return _after_action(
        request, escalation_id, rendering.notice(text, "success", escalation_id), ok=True
    )


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)
