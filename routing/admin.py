"""The Django admin over the roster and the SLA targets (house style: escalations/admin.py).

Supervisors (`reassign_escalation`) manage the roster: skills, teams, reviewer profiles
with their skills and shifts; each save is audited in the admin's own transaction. A
person's presence is theirs and the console's (heartbeat, manual switch), shown here but
never set. SLA targets are policy: everyone who supervises may read them, only
`manage_policy` changes them, and every change goes through `sla_target_update`, which
versions and audits it. Targets are never deleted: a band always has one.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from escalations.admin import MANAGE_POLICY, RoleAdmin, _has
from escalations.audit import Actor, audit_record
from escalations.models import Priority
from routing.models import ReviewerProfile, ReviewerSkill, Shift, Skill, SlaTarget, Team
from routing.sla import sla_target_errors, sla_target_update

SUPERVISE = "escalations.reassign_escalation"


class RosterInline(admin.TabularInline):
    """Rows of a profile, editable by whoever may edit the profile."""

    extra = 0

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _has(request, SUPERVISE)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _has(request, SUPERVISE)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _has(request, SUPERVISE)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _has(request, SUPERVISE)


class ReviewerSkillInline(RosterInline):
    model = ReviewerSkill
    fields = ("skill", "proficiency")


class ShiftInline(RosterInline):
    model = Shift
    fields = ("weekday", "starts", "ends")


class AuditedRosterAdmin(RoleAdmin):
    """Roster records: each change is audited with what it was before and after, under the
    same verbs as the console's roster services (`roster.skill_added`, …)."""

    view_perm = SUPERVISE
    edit_perm = SUPERVISE
    audit_noun = ""

    def snapshot(self, obj: Any) -> dict[str, Any]:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        before = self.snapshot(type(obj).objects.get(pk=obj.pk)) if change else None
        form.baton_audit_before = before  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)  # inlines are part of the record
        obj = form.instance
        before = getattr(form, "baton_audit_before", None)
        after = self.snapshot(obj)
        if before is None:
            verb, data = "added", after
        else:
            changed = {k: {"from": before[k], "to": v} for k, v in after.items() if before[k] != v}
            if not changed:
                return
            verb, data = "changed", {"changed": changed}
        audit_record(
            actor=Actor.person(request.user),
            verb=f"roster.{self.audit_noun}_{verb}",
            obj=obj,
            data=data,
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        audit_record(
            actor=Actor.person(request.user),
            verb=f"roster.{self.audit_noun}_removed",
            obj=obj,
            data=self.snapshot(obj),
        )
        super().delete_model(request, obj)

    # The "delete selected" action, unlike the delete page, brings no transaction of its own.
    @transaction.atomic
    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


class NamedRosterAdmin(AuditedRosterAdmin):
    """A roster entry that is a slug and a name (skills, teams)."""

    list_display = ("slug", "name")
    search_fields = ("slug", "name")

    def snapshot(self, obj: Any) -> dict[str, Any]:
        return {"slug": obj.slug, "name": obj.name}


@admin.register(Skill)
class SkillAdmin(NamedRosterAdmin):
    audit_noun = "skill"


@admin.register(Team)
class TeamAdmin(NamedRosterAdmin):
    audit_noun = "team"


@admin.register(ReviewerProfile)
class ReviewerProfileAdmin(AuditedRosterAdmin):
    audit_noun = "profile"
    list_display = ("user", "team", "capacity", "presence", "last_seen_at", "last_assigned_at")
    list_filter = ("team", "presence")
    search_fields = ("user__username", "user__first_name", "user__last_name")
    list_select_related = ("user", "team")
    fields = (
        "user",
        "team",
        "languages",
        "capacity",
        "presence",
        "presence_changed_at",
        "last_seen_at",
        "last_assigned_at",
    )
    readonly_fields = ("presence", "presence_changed_at", "last_seen_at", "last_assigned_at")
    inlines = (ReviewerSkillInline, ShiftInline)

    def snapshot(self, obj: Any) -> dict[str, Any]:
        return {
            "user": obj.user.get_username(),
            "team": obj.team.slug if obj.team else None,
            "languages": obj.languages,
            "capacity": obj.capacity,
            "skills": sorted(
                f"{rs.skill.slug}:{rs.proficiency}" for rs in obj.skills.select_related("skill")
            ),
            "shifts": [str(shift) for shift in obj.shifts.all()],
        }


class SlaTargetForm(forms.ModelForm):
    class Meta:
        model = SlaTarget
        fields = ("priority", "accept_seconds", "resolve_seconds", "warning_share")
        widgets = {"priority": forms.Select(choices=Priority.choices)}

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if not self.errors:
            for error in sla_target_errors(
                accept_seconds=data["accept_seconds"],
                resolve_seconds=data["resolve_seconds"],
                warning_share=data["warning_share"],
            ):
                self.add_error(error["field"], error["message"])
        return data


@admin.register(SlaTarget)
class SlaTargetAdmin(RoleAdmin):
    view_perm = SUPERVISE
    edit_perm = MANAGE_POLICY
    form = SlaTargetForm
    list_display = (
        "priority",
        "accept_seconds",
        "resolve_seconds",
        "warning_share",
        "version",
        "updated_at",
    )
    ordering = ("priority",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A row is its band: the band itself is chosen once, when the row is added.
        return ("priority", "version", "updated_at") if obj else ("version", "updated_at")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = ["priority", "accept_seconds", "resolve_seconds", "warning_share"]
        return [*fields, "version", "updated_at"] if obj else fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Bands without a row run on the shipped defaults until an admin adds one.
        return super().has_add_permission(request) and SlaTarget.objects.count() < len(Priority)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        saved = sla_target_update(
            target=obj,
            accept_seconds=obj.accept_seconds,
            resolve_seconds=obj.resolve_seconds,
            warning_share=obj.warning_share,
            actor=Actor.person(request.user),
        )
        obj.pk, obj.version, obj.updated_at = saved.pk, saved.version, saved.updated_at
