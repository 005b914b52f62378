"""Roster state changes: presence, a supervisor's reassignment, and the roster itself
(people, skills, teams, shifts)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import time
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from console.events import publish_case_changed
from escalations.audit import Actor, audit_record, audited_transaction
from escalations.errors import Conflict, Forbidden, InvalidInput, NotFound
from escalations.models import OPEN_STATUSES, Escalation, Status
from routing.assignment import CapacityFull, is_online, lock_capacity
from routing.models import Presence, ReviewerProfile, ReviewerSkill, Shift, Skill, Team
from routing.selectors import may_supervise


def _schedule_assignment() -> None:
    from routing.tasks import assign_queued

    transaction.on_commit(lambda: assign_queued.delay(), robust=True)


def presence_seen(*, user: User) -> None:
    """A console tab's heartbeat. Opening the console puts an offline person online."""
    profile = ReviewerProfile.objects.filter(user=user).first()
    if profile is None:
        return
    now = timezone.now()
    was_online = is_online(profile, now)
    fields: dict[str, Any] = {"last_seen_at": now}
    if profile.presence == Presence.OFFLINE:
        fields |= {"presence": Presence.ONLINE, "presence_changed_at": now}
    with audited_transaction():
        ReviewerProfile.objects.filter(pk=profile.pk).update(**fields)
        if not was_online and fields.get("presence", profile.presence) == Presence.ONLINE:
            _schedule_assignment()  # someone came online: the queue may move


@audited_transaction()
def presence_set(*, user: User, presence: str) -> ReviewerProfile:
    """The manual switch: online, away (no new offers) or offline."""
    if presence not in Presence.values:
        raise InvalidInput(
            "Unknown presence.",
            errors=[{"field": "presence", "message": "online, away or offline"}],
        )
    # OF self: as in lock_capacity, a plain FOR UPDATE would lock the user row too (the
    # default ordering joins it) and deadlock with that person's audited transactions.
    profile = ReviewerProfile.objects.select_for_update(of=("self",)).filter(user=user).first()
    if profile is None:
        raise NotFound("You are not on the roster; a supervisor can add you.")
    before = profile.presence
    now = timezone.now()
    profile.presence = presence
    profile.presence_changed_at = now
    if presence == Presence.ONLINE:
        profile.last_seen_at = now
    profile.save(update_fields=["presence", "presence_changed_at", "last_seen_at"])
    if before != presence:
        audit_record(
            actor=Actor.person(user),
            verb="roster.presence",
            obj=profile,
            data={"from": before, "to": presence},
        )
    if presence == Presence.ONLINE:
        _schedule_assignment()
    return profile


@audited_transaction()
def escalation_reassign(
    *,
    escalation_id: int,
    supervisor: User,
    to_user: User | None,
    reason: str,
    version: int,
) -> Escalation:
    """A supervisor moves an open case to another person (offered to them) or back to the
    queue. The new holder's capacity is respected; both consoles update at once."""
    if not supervisor.has_perm("escalations.reassign_escalation"):
        raise Forbidden("Only supervisors reassign cases.")
    if not reason.strip():
        raise InvalidInput(
            "Say why the case moves.", errors=[{"field": "reason", "message": "required"}]
        )
    case = (
        Escalation.objects.select_for_update(of=("self",))
        .select_related("assignee")
        .filter(pk=escalation_id)
        .first()
    )
    if case is None:
        raise NotFound(f"No case {escalation_id}.")
    if case.version != version:
        raise Conflict("The case changed since you looked at it; nothing was moved. Reload.")
    if case.status not in OPEN_STATUSES:
        raise Conflict(f"The case is {case.get_status_display().lower()}; it cannot move.")
    if to_user is not None and to_user.pk == case.assignee_id:
        raise Conflict(f"{to_user.get_full_name() or to_user} already holds the case.")
    if to_user is not None:
        if not to_user.is_active or not to_user.has_perm("escalations.work_queue"):
            raise InvalidInput(
                "That person cannot work cases.", errors=[{"field": "to", "message": "no role"}]
            )
        try:
            lock_capacity(to_user)
        except CapacityFull as full:
            raise Conflict(str(full)) from None
    previous = case.assignee
    now = timezone.now()
    if to_user is None and previous is not None:
        # Back to the queue means "someone else": never offered straight back to them.
        case.declined_by = [*(case.declined_by or []), previous.pk]
    case.assignee = to_user
    case.status = Status.ASSIGNED if to_user is not None else Status.QUEUED
    case.offered_at = now if to_user is not None else None
    case.accepted_at = None
    case.version += 1
    case.save(
        update_fields=[
            "assignee",
            "status",
            "offered_at",
            "accepted_at",
            "declined_by",
            "version",
            "updated_at",
        ]
    )
    audit_record(
        actor=Actor.person(supervisor),
        verb="escalation.reassigned",
        escalation=case,
        obj=case,
        data={
            "from": previous.get_username() if previous else None,
            "to": to_user.get_username() if to_user else None,
            "reason": reason.strip(),
        },
    )
    publish_case_changed(
        escalation_id=case.pk, change="reassigned", actor=supervisor.get_username()
    )
    if to_user is None or previous is not None:
        _schedule_assignment()
    return case


# --- The roster (supervisors) ----------------------------------------------------------------
# A person must be a supervisor; the system (seed_demo, a command) is trusted. Every change
# is one audited transaction; field problems come back as InvalidInput naming the field.

LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
PROFICIENCY = range(1, 6)
WEEK_MINUTES = 7 * 24 * 60


def _check_roster_actor(actor: Actor) -> None:
    if actor.user is not None and not may_supervise(actor.user):
        raise Forbidden("Only supervisors manage the roster.")


def _field_errors(error: ValidationError) -> list[dict[str, str]]:
    if not hasattr(error, "error_dict"):
        return [{"field": NON_FIELD_ERRORS, "message": " ".join(error.messages)}]
    return [
        {"field": field, "message": " ".join(messages)}
        for field, messages in error.message_dict.items()
    ]


def _languages(raw: Iterable[str], errors: list[dict[str, str]]) -> list[str]:
    codes = [code.strip().lower() for code in raw if code.strip()]
    bad = [code for code in codes if not LANGUAGE_CODE.match(code)]
    if bad:
        errors.append(
            {
                "field": "languages",
                "message": f"not a language code: {', '.join(bad)} (codes like en, de, pt-br)",
            }
        )
    return list(dict.fromkeys(codes))


def _profile_data(profile: ReviewerProfile) -> dict[str, Any]:
    return {
        "user": profile.user.get_username(),
        "team": profile.team.slug if profile.team else None,
        "languages": list(profile.languages),
        "capacity": profile.capacity,
        "skills": {
            rs.skill.slug: rs.proficiency
            for rs in profile.skills.select_related("skill").order_by("skill__slug")
        },
    }


def _locked_profile(profile_id: int) -> ReviewerProfile:
    profile = (
        ReviewerProfile.objects.select_for_update(of=("self",))
        .select_related("user", "team")
        .filter(pk=profile_id)
        .first()
    )
    if profile is None:
        raise NotFound(f"No one with roster profile {profile_id}.")
    return profile


@audited_transaction()
def roster_profile_add(
    *,
    actor: Actor,
    user: User,
    team: Team | None = None,
    languages: Iterable[str] = (),
    capacity: int = 3,
) -> ReviewerProfile:
    """Put someone who may work cases on the roster (no skills or shifts yet)."""
    _check_roster_actor(actor)
    errors: list[dict[str, str]] = []
    if not user.is_active or not user.has_perm("escalations.work_queue"):
        errors.append({"field": "user", "message": "cannot work cases: give them a role first"})
    elif ReviewerProfile.objects.filter(user=user).exists():
        errors.append({"field": "user", "message": "already on the roster"})
    profile = ReviewerProfile(
        user=user, team=team, languages=_languages(languages, errors), capacity=capacity
    )
    try:
        profile.full_clean(exclude=["user"], validate_unique=False)
    except ValidationError as error:
        errors += _field_errors(error)
    if errors:
        raise InvalidInput("The person was not added.", errors=errors)
    try:
        with audited_transaction():
            profile.save()
    except IntegrityError:  # someone added them a moment ago
        raise InvalidInput(
            "The person was not added.",
            errors=[{"field": "user", "message": "already on the roster"}],
        ) from None
    audit_record(actor=actor, verb="roster.profile_added", obj=profile, data=_profile_data(profile))
    return profile


@audited_transaction()
def roster_profile_change(
    *,
    actor: Actor,
    profile_id: int,
    team: Team | None,
    languages: Iterable[str],
    capacity: int,
    skills: Mapping[str, int],
) -> ReviewerProfile:
    """Team, languages, capacity and skills (slug → proficiency 1 to 5; a skill left out is
    taken away). Lowering capacity below what someone holds takes nothing from them: they
    just get no new case until they are below it."""
    _check_roster_actor(actor)
    profile = _locked_profile(profile_id)
    before = _profile_data(profile)
    errors: list[dict[str, str]] = []
    known = {skill.slug: skill for skill in Skill.objects.filter(slug__in=list(skills))}
    for slug, proficiency in skills.items():
        if slug not in known:
            errors.append({"field": "skills", "message": f"no skill {slug!r}"})
        elif proficiency not in PROFICIENCY:
            errors.append({"field": f"skill__{slug}", "message": "proficiency is 1 to 5"})
    profile.team = team
    profile.languages = _languages(languages, errors)
    profile.capacity = capacity
    try:
        profile.full_clean(exclude=["user"], validate_unique=False)
    except ValidationError as error:
        errors += _field_errors(error)
    if errors:
        raise InvalidInput("Nothing was changed.", errors=errors)
    profile.save(update_fields=["team", "languages", "capacity"])
    held = {rs.skill.slug: rs for rs in profile.skills.select_related("skill")}
    profile.skills.exclude(skill__slug__in=list(skills)).delete()
    for slug, proficiency in skills.items():
        current = held.get(slug)
        if current is None:
            ReviewerSkill.objects.create(
                profile=profile, skill=known[slug], proficiency=proficiency
            )
        elif current.proficiency != proficiency:
            current.proficiency = proficiency
            current.save(update_fields=["proficiency"])
    after = _profile_data(profile)
    changes = {
        key: {"from": before[key], "to": after[key]} for key in after if before[key] != after[key]
    }
    if changes:
        audit_record(
            actor=actor,
            verb="roster.profile_changed",
            obj=profile,
            data={"user": after["user"], "changed": changes},
        )
        _schedule_assignment()  # more capacity, a new skill or language: the queue may move
    return profile


def _week_spans(weekday: int, starts: time, ends: time) -> list[tuple[int, int]]:
    """The shift as minutes of the week (Monday 00:00 = 0), split where it wraps."""
    start = weekday * 1440 + starts.hour * 60 + starts.minute
    end = start + (ends.hour * 60 + ends.minute - starts.hour * 60 - starts.minute) % 1440
    return (
        [(start, end)] if end <= WEEK_MINUTES else [(start, WEEK_MINUTES), (0, end - WEEK_MINUTES)]
    )


def _clock(shift: Shift) -> str:
    return f"{shift.weekday_name} {shift.starts:%H:%M}\u2013{shift.ends:%H:%M}"


@audited_transaction()
def roster_shifts_add(
    *, actor: Actor, profile_id: int, weekdays: Sequence[int], starts: time, ends: time
) -> list[Shift]:
    """The same weekly shift on each of `weekdays` (0 = Monday). One that ends before it
    starts runs overnight; one that overlaps a shift the person has is refused."""
    _check_roster_actor(actor)
    profile = _locked_profile(profile_id)
    errors: list[dict[str, str]] = []
    if not weekdays:
        errors.append({"field": "weekday", "message": "choose a day"})
    existing = list(profile.shifts.all())
    shifts: list[Shift] = []
    for weekday in sorted(set(weekdays)):
        shift = Shift(profile=profile, weekday=weekday, starts=starts, ends=ends)
        try:
            shift.full_clean(exclude=["profile"], validate_constraints=False)
        except ValidationError as error:
            errors += [e for e in _field_errors(error) if e not in errors]
            continue
        spans = _week_spans(weekday, starts, ends)
        for other in [*existing, *shifts]:
            if any(
                a < d and c < b
                for a, b in spans
                for c, d in _week_spans(other.weekday, other.starts, other.ends)
            ):
                errors.append({"field": "starts", "message": f"overlaps {_clock(other)}"})
                break
        shifts.append(shift)
    if errors:
        raise InvalidInput("No shift was added.", errors=errors)
    for shift in shifts:
        shift.save()
    audit_record(
        actor=actor,
        verb="roster.shifts_added",
        obj=profile,
        data={
            "user": profile.user.get_username(),
            "shifts": [
                {"weekday": s.weekday, "starts": f"{s.starts:%H:%M}", "ends": f"{s.ends:%H:%M}"}
                for s in shifts
            ],
        },
    )
    _schedule_assignment()  # someone may be on shift now
    return shifts


@audited_transaction()
def roster_shift_remove(*, actor: Actor, shift_id: int) -> ReviewerProfile:
    _check_roster_actor(actor)
    shift = Shift.objects.select_related("profile__user").filter(pk=shift_id).first()
    if shift is None:
        raise NotFound("That shift is gone already.")
    _locked_profile(shift.profile_id)
    audit_record(
        actor=actor,
        verb="roster.shift_removed",
        obj=shift.profile,
        data={
            "user": shift.profile.user.get_username(),
            "weekday": shift.weekday,
            "starts": f"{shift.starts:%H:%M}",
            "ends": f"{shift.ends:%H:%M}",
        },
    )
    shift.delete()
    return shift.profile


def _add_named(actor: Actor, model: type[Skill] | type[Team], slug: str, name: str) -> Any:
    _check_roster_actor(actor)
    kind = model._meta.verbose_name
    row = model(slug=slug.strip().lower(), name=name.strip())
    try:
        row.full_clean()
    except ValidationError as error:
        raise InvalidInput(f"The {kind} was not added.", errors=_field_errors(error)) from None
    try:
        with audited_transaction():
            row.save()
    except IntegrityError:
        raise InvalidInput(
            f"The {kind} was not added.",
            errors=[{"field": "slug", "message": f"a {kind} with this slug exists"}],
        ) from None
    audit_record(
        actor=actor, verb=f"roster.{kind}_added", obj=row, data={"slug": row.slug, "name": row.name}
    )
    return row


@audited_transaction()
def roster_skill_add(*, actor: Actor, slug: str, name: str) -> Skill:
    """A skill cases can need (a task type's or a rule's `skill` names it by slug)."""
    skill: Skill = _add_named(actor, Skill, slug, name)
    return skill


@audited_transaction()
def roster_team_add(*, actor: Actor, slug: str, name: str) -> Team:
    team: Team = _add_named(actor, Team, slug, name)
    return team
