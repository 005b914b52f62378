"""Policy administration in the console (DESIGN §3): task types, rules, a package tester,
SLA targets and integrations. Thin: parse, call one service or selector, render
(STYLE.md). Permissions are checked here, server-side, on every view."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.views import ConsoleRequest
from escalations import policy_admin, services
from escalations.audit import Actor
from escalations.errors import BatonError, InvalidInput
from escalations.forms_policy import (
    IntegrationCreateForm,
    IntegrationUrlForm,
    RuleForm,
    RuleTestForm,
    SlaTargetForm,
    TaskTypeCreateForm,
    TaskTypeForm,
)
from escalations.models import Integration, Level, PolicyRule, TaskType
from routing.forms import attach_errors
from routing.models import SlaTarget
from routing.sla import sla_target_update, sla_targets

manage_policy = permission_required(policy_admin.MANAGE_POLICY, raise_exception=True)
manage_integrations = permission_required(policy_admin.MANAGE_INTEGRATIONS, raise_exception=True)


def _page(
    request: ConsoleRequest, template: str, tab: str, status: int = 200, **context: Any
) -> HttpResponse:
    return render(
        request, f"policy/{template}", {"section": "policy", "tab": tab, **context}, status=status
    )


# --- Task types --------------------------------------------------------------------------------


@require_GET
@login_required
@manage_policy
def task_types(request: ConsoleRequest) -> HttpResponse:
    return _page(
        request,
        "task_types.html",
        "task_types",
        task_types=TaskType.objects.order_by("name"),
        changes=policy_admin.last_changes(model=TaskType),
        last=policy_admin.last_change(model=TaskType),
    )


@require_http_methods(["GET", "POST"])
@login_required
@manage_policy
def task_type_edit(request: ConsoleRequest, task_type_id: int | None = None) -> HttpResponse:
    """A task type's policy, or a new task type (no id): its name and slug as well."""
    task_type = get_object_or_404(TaskType, pk=task_type_id) if task_type_id else None
    form_class = TaskTypeForm if task_type else TaskTypeCreateForm
    # A new one starts from the model's defaults.
    form = form_class(initial=TaskTypeForm.initial_for(task_type or TaskType()))
    if request.method == "POST":
        form = form_class(request.POST)
        if form.is_valid():
            actor = Actor.person(request.user)
            try:
                saved = (
                    policy_admin.task_type_update(
                        task_type=task_type, actor=actor, **form.changes()
                    )
                    if task_type
                    else policy_admin.task_type_create(actor=actor, **form.changes())
                )
            except InvalidInput as error:
                attach_errors(form, error)
            else:
                messages.success(request, f"{saved.name}: policy v{saved.version} in force.")
                return redirect("policy_task_types")
    return _page(
        request,
        "task_type.html",
        "task_types",
        status=422 if form.errors else 200,
        task_type=task_type,
        form=form,
        last=policy_admin.last_change(model=TaskType, obj=task_type) if task_type else None,
    )


# --- Rules -------------------------------------------------------------------------------------


@require_GET
@login_required
@manage_policy
def rules(request: ConsoleRequest) -> HttpResponse:
    return _page(
        request,
        "rules.html",
        "rules",
        rules=PolicyRule.objects.prefetch_related("task_types").order_by("-hard", "code"),
        changes=policy_admin.last_changes(model=PolicyRule),
        last=policy_admin.last_change(model=PolicyRule),
    )


@require_http_methods(["GET", "POST"])
@login_required
@manage_policy
def rule_edit(request: ConsoleRequest, rule_id: int | None = None) -> HttpResponse:
    rule = get_object_or_404(PolicyRule, pk=rule_id) if rule_id else None
    hard = bool(rule and rule.hard)
    if request.method == "POST":
        form = RuleForm(request.POST, hard=hard, initial=RuleForm.initial_for(rule) if rule else {})
        if form.is_valid():
            try:
                saved = policy_admin.rule_save(
                    rule=rule, actor=Actor.person(request.user), **form.fields_for_service()
                )
            except InvalidInput as error:
                attach_errors(form, error)
            else:
                messages.success(request, f"Rule {saved.code}: v{saved.version} in force.")
                return redirect("policy_rules")
    else:
        form = RuleForm(
            hard=hard, initial=RuleForm.initial_for(rule) if rule else {"enabled": True}
        )
    return _page(
        request,
        "rule.html",
        "rules",
        status=422 if form.errors else 200,
        rule=rule,
        form=form,
        last=policy_admin.last_change(model=PolicyRule, obj=rule) if rule else None,
    )


@require_POST
@login_required
@manage_policy
def rule_enabled(request: ConsoleRequest, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(PolicyRule, pk=rule_id)
    status = 200
    try:
        rule = policy_admin.rule_set_enabled(
            rule=rule, enabled=request.POST.get("enabled") == "on", actor=Actor.person(request.user)
        )
    except InvalidInput as error:
        status = 422
        if not request.htmx:
            messages.error(request, error.message)
    if request.htmx:
        context = {"rule": rule, "changes": policy_admin.last_changes(model=PolicyRule)}
        return render(request, "policy/rules.html#rule_row", context, status=status)
    return redirect("policy_rules")


# --- Test a package ----------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
@manage_policy
def package_test(request: ConsoleRequest) -> HttpResponse:
    result = None
    form = RuleTestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        task_type = form.cleaned_data["task_type"]
        result = policy_admin.rule_test(
            package_json=form.cleaned_data["package"],
            task_type_slug=task_type.slug if task_type else None,
        )
        if not result.ok:
            attach_errors(form, InvalidInput("The package cannot be judged.", errors=result.errors))
    return _page(
        request,
        "test.html",
        "test",
        status=422 if form.errors else 200,
        form=form,
        result=result,
        levels=dict(Level.choices),
    )


# --- SLA targets -------------------------------------------------------------------------------


def _sla_forms(bound: SlaTargetForm | None = None) -> list[tuple[Any, SlaTargetForm]]:
    rows = []
    for priority, target in sla_targets().items():
        if bound is not None and bound.data.get(f"p{priority}-priority") == str(priority):
            rows.append((target, bound))
            continue
        initial = {
            "priority": priority,
            "accept_minutes": target.accept.total_seconds() / 60,
            "resolve_minutes": target.resolve.total_seconds() / 60,
            "warning_share": target.warning_share,
        }
        rows.append((target, SlaTargetForm(prefix=f"p{priority}", initial=initial)))
    return rows


@require_http_methods(["GET", "POST"])
@login_required
@manage_policy
def sla(request: ConsoleRequest) -> HttpResponse:
    bound = None
    if request.method == "POST":
        priority = request.POST.get("band", "")
        bound = SlaTargetForm(request.POST, prefix=f"p{priority}")
        if bound.is_valid():
            data = bound.cleaned_data
            try:
                row = sla_target_update(
                    target=SlaTarget.objects.filter(priority=data["priority"]).first()
                    or SlaTarget(priority=data["priority"]),
                    accept_seconds=round(data["accept_minutes"] * 60),
                    resolve_seconds=round(data["resolve_minutes"] * 60),
                    warning_share=data["warning_share"],
                    actor=Actor.person(request.user),
                )
            except InvalidInput as error:
                for problem in error.errors:  # seconds in the service, minutes on the page
                    problem["field"] = problem["field"].replace("_seconds", "_minutes")
                attach_errors(bound, error)
            else:
                messages.success(request, f"P{row.priority} target: v{row.version} in force.")
                return redirect("policy_sla")
    versions = {row.priority: row for row in SlaTarget.objects.all()}
    return _page(
        request,
        "sla.html",
        "sla",
        status=422 if bound is not None and bound.errors else 200,
        rows=[(t, f, versions.get(t.priority)) for t, f in _sla_forms(bound)],
        changes=policy_admin.last_changes(model=SlaTarget),
        last=policy_admin.last_change(model=SlaTarget),
    )


# --- Integrations ------------------------------------------------------------------------------


def _integrations_page(request: ConsoleRequest, status: int = 200, **context: Any) -> HttpResponse:
    return _page(
        request,
        "integrations.html",
        "integrations",
        status=status,
        integrations=Integration.objects.order_by("name"),
        changes=policy_admin.last_changes(model=Integration),
        last=policy_admin.last_change(model=Integration),
        create_form=context.pop("create_form", None) or IntegrationCreateForm(),
        **context,
    )


@require_GET
@login_required
@manage_integrations
def integrations(request: ConsoleRequest) -> HttpResponse:
    return _integrations_page(request)


@require_POST
@login_required
@manage_integrations
def integration_create(request: ConsoleRequest) -> HttpResponse:
    form = IntegrationCreateForm(request.POST)
    if form.is_valid():
        try:
            integration, token = services.integration_create(
                name=form.cleaned_data["name"],
                callback_url=form.cleaned_data["callback_url"],
                actor=Actor.person(request.user),
            )
        except BatonError as error:
            attach_errors(form, InvalidInput(error.message, errors=error.errors))
        else:
            # Rendered, not redirected: the token lives in this one response and nowhere else.
            return _integrations_page(request, shown={"integration": integration, "token": token})
    return _integrations_page(request, status=422, create_form=form)


@require_POST
@login_required
@manage_integrations
def integration_rotate(request: ConsoleRequest, integration_id: int) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=integration_id)
    token = services.integration_rotate_token(
        integration=integration, actor=Actor.person(request.user)
    )
    return _integrations_page(request, shown={"integration": integration, "token": token})


@require_POST
@login_required
@manage_integrations
def integration_secret(request: ConsoleRequest, integration_id: int) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=integration_id)
    secret = policy_admin.integration_regenerate_webhook_secret(
        integration=integration, actor=Actor.person(request.user)
    )
    return _integrations_page(request, shown={"integration": integration, "secret": secret})


@require_POST
@login_required
@manage_integrations
def integration_webhook(request: ConsoleRequest, integration_id: int) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=integration_id)
    form = IntegrationUrlForm(request.POST)
    if form.is_valid():
        try:
            policy_admin.integration_update(
                integration=integration,
                actor=Actor.person(request.user),
                callback_url=form.cleaned_data["callback_url"],
            )
        except InvalidInput as error:
            attach_errors(form, error)
        else:
            messages.success(request, f"{integration.name}: webhook URL saved.")
            return redirect("policy_integrations")
    return _integrations_page(request, status=422, url_form=form, url_form_for=integration.pk)


@require_POST
@login_required
@manage_integrations
def integration_active(request: ConsoleRequest, integration_id: int) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=integration_id)
    integration = policy_admin.integration_update(
        integration=integration,
        actor=Actor.person(request.user),
        active=request.POST.get("active") == "on",
    )
    state = "active" if integration.active else "switched off: its token is refused"
    messages.success(request, f"{integration.name} is {state}.")
    return redirect("policy_integrations")


@require_POST
@login_required
@manage_integrations
def integration_callback_enable(request: ConsoleRequest, integration_id: int) -> HttpResponse:
    integration = get_object_or_404(Integration, pk=integration_id)
    try:
        policy_admin.integration_enable_callback_url(
            integration=integration,
            url=request.POST.get("url", ""),
            actor=Actor.person(request.user),
        )
    except InvalidInput as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{integration.name}: deliveries to that endpoint resume.")
    return redirect("policy_integrations")
