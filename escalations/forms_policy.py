"""Policy forms: they parse what an admin typed into Python values and carry the errors
back to the fields. The rules themselves (ranges, thresholds in order, hard rules kept on)
live in the model and the services (escalations/policy_admin.py)."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms

from escalations.models import Level, Priority, TaskType

LEVEL_CHOICES = [(str(value), label) for value, label in Level.choices]
PRIORITY_CHOICES = [(str(value), label) for value, label in Priority.choices]
UNIT = {"min": "0", "max": "1", "step": "0.01"}


def words(text: str) -> list[str]:
    """ "refunds, billing" → ["refunds", "billing"]."""
    return [word for word in re.split(r"[\s,;]+", text) if word]


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class TaskTypeForm(forms.Form):
    level = forms.TypedChoiceField(choices=LEVEL_CHOICES, coerce=int)
    review_threshold = forms.FloatField(
        widget=forms.NumberInput(attrs=UNIT), help_text="Below it, a human decides."
    )
    autonomy_threshold = forms.FloatField(
        widget=forms.NumberInput(attrs=UNIT),
        help_text="Below it, the agent proceeds but the case is reviewed afterwards.",
    )
    default_priority = forms.TypedChoiceField(choices=PRIORITY_CHOICES, coerce=int)
    required_skills = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"placeholder": "refunds, billing"})
    )
    sample_rate = forms.FloatField(
        label="L1 sample rate",
        widget=forms.NumberInput(attrs=UNIT),
        help_text="Share of autonomous cases reviewed after the fact.",
    )
    active = forms.BooleanField(required=False)

    @classmethod
    def initial_for(cls, task_type: TaskType) -> dict[str, Any]:
        return {
            "level": task_type.level,
            "review_threshold": task_type.review_threshold,
            "autonomy_threshold": task_type.autonomy_threshold,
            "default_priority": task_type.default_priority,
            "required_skills": ", ".join(task_type.required_skills or []),
            "sample_rate": task_type.sample_rate,
            "active": task_type.active,
        }

    def changes(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["required_skills"] = words(data["required_skills"])
        return data


class TaskTypeCreateForm(TaskTypeForm):
    """A new task type: its name and slug (what agents send as `task_type`), then the policy."""

    slug = forms.SlugField(max_length=64, help_text="What agents send as task_type.")
    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    field_order = ["name", "slug", "description"]


class RuleForm(forms.Form):
    code = forms.SlugField(max_length=64)
    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    enabled = forms.BooleanField(required=False)
    keywords = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One word or phrase a line, matched whole and case-blind.",
    )
    pattern = forms.CharField(required=False, max_length=500, help_text="A regular expression.")
    conditions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='Over attributes, all must hold: [{"key": "amount", "op": "gt", "value": 500}]',
    )
    action_names = forms.CharField(
        required=False, help_text="Proposed action names that fire the rule, comma-separated."
    )
    level = forms.TypedChoiceField(
        choices=[("", "—"), *LEVEL_CHOICES], coerce=int, empty_value=None, required=False
    )
    priority = forms.TypedChoiceField(
        choices=[("", "—"), *PRIORITY_CHOICES], coerce=int, empty_value=None, required=False
    )
    skill = forms.SlugField(required=False, max_length=64, help_text="A skill the case needs.")
    task_types = forms.ModelMultipleChoiceField(
        queryset=TaskType.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every task type.",
    )

    def __init__(self, *args: Any, hard: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if hard:  # shipped with Baton: tuned, never switched off or renamed
            self.fields["enabled"].disabled = True
            self.fields["code"].disabled = True

    @classmethod
    def initial_for(cls, rule: Any) -> dict[str, Any]:
        return {
            "code": rule.code,
            "name": rule.name,
            "description": rule.description,
            "enabled": rule.enabled,
            "keywords": "\n".join(rule.keywords or []),
            "pattern": rule.pattern,
            "conditions": json.dumps(rule.conditions) if rule.conditions else "",
            "action_names": ", ".join(rule.action_names or []),
            "level": rule.level,
            "priority": rule.priority,
            "skill": rule.skill,
            "task_types": list(rule.task_types.all()) if rule.pk else [],
        }

    def clean_conditions(self) -> Any:
        text = self.cleaned_data["conditions"].strip()
        if not text:
            return []
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}.") from None

    def fields_for_service(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["keywords"] = lines(data["keywords"])
        data["action_names"] = [a.strip() for a in data["action_names"].split(",") if a.strip()]
        return data


class RuleTestForm(forms.Form):
    task_type = forms.ModelChoiceField(
        queryset=TaskType.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label="as in the package",
    )
    package = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false", "class": "code"}),
        help_text="A handoff package as an agent sends it (JSON).",
    )


class SlaTargetForm(forms.Form):
    priority = forms.TypedChoiceField(
        choices=PRIORITY_CHOICES, coerce=int, widget=forms.HiddenInput
    )
    accept_minutes = forms.FloatField(min_value=0, label="Accept within (min)")
    resolve_minutes = forms.FloatField(min_value=0, label="Resolve within (min)")
    warning_share = forms.FloatField(
        label="Warn at",
        widget=forms.NumberInput(attrs={"min": "0.1", "max": "0.99", "step": "0.05"}),
    )


class IntegrationCreateForm(forms.Form):
    name = forms.CharField(max_length=120)
    callback_url = forms.URLField(
        required=False, max_length=500, label="Webhook URL", assume_scheme="https"
    )


class IntegrationUrlForm(forms.Form):
    callback_url = forms.URLField(
        required=False, max_length=500, label="Webhook URL", assume_scheme="https"
    )
