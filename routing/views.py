"""Roster, coverage and the supervisor board; the presence switch. Thin: parse, call one
service or selector, render (STYLE.md). Every write works as a plain form post; htmx
only spares a reload."""

from __future__ import annotations

from functools import wraps
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.models import User
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from console import rendering as console_rendering
from console.views import ConsoleRequest
from escalations.audit import Actor
from escalations.errors import BatonError, InvalidInput, NotFound
from routing import rendering, selectors, services
from routing.forms import NamedForm, PersonAddForm, PersonForm, ShiftForm, attach_errors
from routing.models import Skill

supervisors = permission_required("escalations.reassign_escalation", raise_exception=True)
work_queue = permission_required("escalations.work_queue", raise_exception=True)
COVERAGE_WEEKS = 4
QUEUE = "queue"  # the move panel's choice for "back to the queue"


def _found(view: Any) -> Any:
    """A selector's NotFound is a 404 page."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(*args, **kwargs)
        except NotFound as error:
            raise Http404(error.message) from None

    return wrapper


# --- Presence ----------------------------------------------------------------------------------


@require_POST
@login_required
@work_queue
def presence(request: ConsoleRequest) -> HttpResponse:
    try:
        services.presence_set(user=request.user, presence=request.POST.get("presence", ""))
    except BatonError as error:
        if request.htmx:  # the switch as it is, and why it did not move
            html = console_rendering.error_notice(error) + rendering.presence_switch(
                user=request.user, next_url=_next(request)
            )
            return HttpResponse(html, status=422)
        messages.error(request, error.message)
    if request.htmx:
        return HttpResponse(rendering.presence_switch(user=request.user, next_url=_next(request)))
    return redirect(_next(request))


def _next(request: ConsoleRequest) -> str:
    for url in (request.POST.get("next"), request.headers.get("referer")):
        if url and url_has_allowed_host_and_scheme(
            url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return url
    return "/"


# --- Roster ------------------------------------------------------------------------------------


def _roster_page(request: ConsoleRequest, status: int = 200, **forms: Any) -> HttpResponse:
    context = {
        "profiles": selectors.roster_profiles(user=request.user),
        "skills": selectors.skills(),
        "teams": selectors.teams(),
        "add_form": forms.get("add_form") or PersonAddForm(initial={"capacity": 3}),
        "skill_form": forms.get("skill_form") or NamedForm(prefix="skill"),
        "team_form": forms.get("team_form") or NamedForm(prefix="team"),
        "now": timezone.now(),
        "section": "roster",
    }
    return render(request, "routing/roster.html", context, status=status)


@require_GET
@login_required
@supervisors
def roster(request: ConsoleRequest) -> HttpResponse:
    return _roster_page(request)


@require_POST
@login_required
@supervisors
def roster_person_add(request: ConsoleRequest) -> HttpResponse:
    form = PersonAddForm(request.POST)
    if form.is_valid():
        try:
            profile = services.roster_profile_add(
                actor=Actor.person(request.user),
                user=form.cleaned_data["user"],
                team=form.cleaned_data["team"],
                languages=form.language_list(),
                capacity=form.cleaned_data["capacity"],
            )
        except InvalidInput as error:
            attach_errors(form, error)
        else:
            messages.success(
                request, f"{profile} is on the roster: now give them skills and shifts."
            )
            return redirect("roster_person", profile_id=profile.pk)
    return _roster_page(request, status=422, add_form=form)


@require_POST
@login_required
@supervisors
def roster_named_add(request: ConsoleRequest, kind: str) -> HttpResponse:
    form = NamedForm(request.POST, prefix=kind)
    if form.is_valid():
        add = services.roster_skill_add if kind == "skill" else services.roster_team_add
        try:
            row = add(actor=Actor.person(request.user), **form.cleaned_data)
        except InvalidInput as error:
            attach_errors(form, error)
        else:
            messages.success(request, f"{kind.title()} {row.name} added.")
            return redirect("roster")
    return _roster_page(request, status=422, **{f"{kind}_form": form})


def _person_page(
    request: ConsoleRequest, profile_id: int, status: int = 200, **forms: Any
) -> HttpResponse:
    profile = selectors.roster_profile(user=request.user, profile_id=profile_id)
    skills = list(Skill.objects.order_by("name"))
    form = forms.get("form") or PersonForm(
        skills=skills,
        initial={
            "team": profile.team_id,
            "languages": ", ".join(profile.languages),
            "capacity": profile.capacity,
            **{f"skill__{rs.skill.slug}": rs.proficiency for rs in profile.skills.all()},
        },
    )
    context = {
        "profile": profile,
        "form": form,
        "shift_form": forms.get("shift_form") or ShiftForm(),
        "shifts": sorted(profile.shifts.all(), key=lambda s: (s.weekday, s.starts)),
        "shift_lines": selectors.shift_lines(profile.shifts.all()),
        "weekly_hours": selectors.weekly_minutes(profile.shifts.all()) / 60,
        "presence_now": selectors.presence_of(profile, timezone.now()),
        "time_zone": settings.TIME_ZONE,
        "section": "roster",
    }
    return render(request, "routing/person.html", context, status=status)


@require_GET
@login_required
@supervisors
@_found
def roster_person(request: ConsoleRequest, profile_id: int) -> HttpResponse:
    return _person_page(request, profile_id)


@require_POST
@login_required
@supervisors
@_found
def roster_person_edit(request: ConsoleRequest, profile_id: int) -> HttpResponse:
    form = PersonForm(request.POST, skills=list(Skill.objects.order_by("name")))
    if form.is_valid():
        try:
            services.roster_profile_change(
                actor=Actor.person(request.user),
                profile_id=profile_id,
                team=form.cleaned_data["team"],
                languages=form.language_list(),
                capacity=form.cleaned_data["capacity"],
                skills=form.skill_levels(),
            )
        except InvalidInput as error:
            attach_errors(form, error)
        else:
            messages.success(request, "Saved.")
            return redirect("roster_person", profile_id=profile_id)
    return _person_page(request, profile_id, status=422, form=form)


@require_POST
@login_required
@supervisors
@_found
def roster_shift_add(request: ConsoleRequest, profile_id: int) -> HttpResponse:
    form = ShiftForm(request.POST)
    if form.is_valid():
        try:
            shifts = services.roster_shifts_add(
                actor=Actor.person(request.user),
                profile_id=profile_id,
                weekdays=form.weekdays(),
                starts=form.cleaned_data["starts"],
                ends=form.cleaned_data["ends"],
            )
        except InvalidInput as error:
            attach_errors(form, error)
        else:
            messages.success(request, f"{len(shifts)} shift(s) added.")
            return redirect("roster_person", profile_id=profile_id)
    return _person_page(request, profile_id, status=422, shift_form=form)


@require_POST
@login_required
@supervisors
@_found
def roster_shift_remove(request: ConsoleRequest, shift_id: int) -> HttpResponse:
    profile = services.roster_shift_remove(actor=Actor.person(request.user), shift_id=shift_id)
    messages.success(request, "Shift removed.")
    return redirect("roster_person", profile_id=profile.pk)


@require_GET
@login_required
@supervisors
def coverage(request: ConsoleRequest) -> HttpResponse:
    skills = selectors.coverage(user=request.user, weeks=COVERAGE_WEEKS)
    chosen = request.GET.get("skill")
    shown = next((s for s in skills if s.slug == chosen), None)
    if shown is None and skills:
        shown = max(skills, key=lambda s: (s.gaps, s.hours_with_demand))
    now = timezone.localtime(timezone.now(), ZoneInfo(settings.TIME_ZONE))
    context = {
        "skills": skills,
        "shown": shown,
        "now_day": now.weekday(),
        "now_hour": now.hour,
        "hours": range(24),
        "weeks": COVERAGE_WEEKS,
        "handling_minutes": round(settings.BATON_AVERAGE_HANDLING_SECONDS / 60),
        "time_zone": settings.TIME_ZONE,
        "section": "roster",
    }
    return render(request, "routing/coverage.html", context)


# --- The board ---------------------------------------------------------------------------------


@require_GET
@login_required
@supervisors
def board(request: ConsoleRequest) -> HttpResponse:
    move = _int(request.GET.get("move"))
    if request.htmx and not request.htmx.boosted:
        if move is None:
            return render(request, "routing/board.html#reassign", {})
        try:
            return render(
                request,
                "routing/board.html#reassign",
                rendering.reassign_context(user=request.user, escalation_id=move),
            )
        except NotFound as error:
            raise Http404(error.message) from None
    context = rendering.board_context(user=request.user)
    if move is not None:
        try:
            context |= rendering.reassign_context(user=request.user, escalation_id=move)
        except NotFound:
            messages.error(request, f"No case {move}.")
    return render(request, "routing/board.html", context)


@require_POST
@login_required
@supervisors
def board_reassign(request: ConsoleRequest, escalation_id: int) -> HttpResponse:
    to = request.POST.get("to", "")
    to_user = None if to == QUEUE else User.objects.filter(pk=_int(to) or 0).first()
    try:
        if to != QUEUE and to_user is None:
            raise InvalidInput(
                "Choose a person or the queue.",
                errors=[{"field": "to", "message": "choose a person or the queue"}],
            )
        case = services.escalation_reassign(
            escalation_id=escalation_id,
            supervisor=request.user,
            to_user=to_user,
            reason=request.POST.get("reason", ""),
            version=_int(request.POST.get("version")) or -1,
        )
    except BatonError as error:
        return _reassign_failed(request, escalation_id, error)
    holder = selectors.display_name(to_user) if to_user else "the queue"
    text = f"Case #{case.pk} moved to {holder}."
    if request.htmx:
        return render(
            request,
            "routing/board.html#reassign",
            {"notice": console_rendering.notice(text, "success")},
        )
    messages.success(request, text)
    return redirect("board")


def _reassign_failed(
    request: ConsoleRequest, escalation_id: int, error: BatonError
) -> HttpResponse:
    try:
        panel = rendering.reassign_context(user=request.user, escalation_id=escalation_id)
    except NotFound as missing:
        raise Http404(missing.message) from None
    panel |= {
        "error": error,
        "field_errors": {e["field"]: e["message"] for e in error.errors},
        "reason": request.POST.get("reason", ""),
        "chosen": request.POST.get("to", ""),
    }
    if request.htmx:
        return render(request, "routing/board.html#reassign", panel, status=error.status)
    context = rendering.board_context(user=request.user) | panel
    return render(request, "routing/board.html", context, status=error.status)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
