"""The console shell: login, the landing page, a case page, and the health check."""

from __future__ import annotations

from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from console.health import health_report
from escalations import selectors


class BatonLoginView(LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("login")


@require_GET
@login_required
@permission_required("escalations.work_queue", raise_exception=True)
def home(request: HttpRequest) -> HttpResponse:
    cases = selectors.recent_escalations_for_user(user=request.user, limit=50)
    return render(request, "console/home.html", {"cases": cases})


@require_GET
@login_required
@permission_required("escalations.work_queue", raise_exception=True)
def case_detail(request: HttpRequest, escalation_id: int) -> HttpResponse:
    escalation = selectors.escalation_for_user(user=request.user, escalation_id=escalation_id)
    return render(request, "console/case_detail.html", {"case": escalation})


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)
