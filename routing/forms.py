"""Roster forms: they parse what a supervisor typed into Python values and carry the
errors back to the fields. Every rule (ranges, uniqueness, overlaps) lives in the model
and the services (routing/services.py); a service's InvalidInput lands here by field."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.auth.models import User

from escalations.errors import InvalidInput
from routing.models import WEEKDAYS, Skill, Team
from routing.selectors import roster_candidates

TIME = forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
DAY_GROUPS = {"weekdays": [0, 1, 2, 3, 4], "weekend": [5, 6], "every": list(range(7))}


def attach_errors(form: forms.Form, error: InvalidInput) -> None:
    """A service's field errors next to the fields; the rest on top of the form."""
    for problem in error.errors:
        name = problem["field"]
        form.add_error(name if name in form.fields else None, problem["message"])
    if not error.errors:
        form.add_error(None, error.message)


class ProfileFieldsForm(forms.Form):
    team = forms.ModelChoiceField(
        queryset=Team.objects.order_by("name"), required=False, empty_label="no team"
    )
    languages = forms.CharField(
        required=False, max_length=200, widget=forms.TextInput(attrs={"placeholder": "en, de"})
    )
    capacity = forms.IntegerField(
        widget=forms.NumberInput(attrs={"title": "Cases the person may hold at once"})
    )

    def language_list(self) -> list[str]:
        return [code for code in re.split(r"[\s,;]+", self.cleaned_data["languages"]) if code]


class PersonAddForm(ProfileFieldsForm):
    user = forms.ModelChoiceField(queryset=User.objects.none(), empty_label="choose…")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = roster_candidates()  # type: ignore[attr-defined]
        self.fields["user"].label_from_instance = (  # type: ignore[attr-defined]
            lambda u: (
                f"{u.get_full_name()} ({u.get_username()})"
                if u.get_full_name()
                else u.get_username()
            )
        )


PROFICIENCY_CHOICES = [("", "—"), *[(str(n), str(n)) for n in range(1, 6)]]


class PersonForm(ProfileFieldsForm):
    """Team, languages, capacity, and a proficiency (or none) for every skill."""

    def __init__(self, *args: Any, skills: list[Skill], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skills = skills
        for skill in skills:
            self.fields[f"skill__{skill.slug}"] = forms.TypedChoiceField(
                label=skill.name,
                choices=PROFICIENCY_CHOICES,
                coerce=int,
                empty_value=None,
                required=False,
            )

    def skill_fields(self) -> list[tuple[Skill, forms.BoundField]]:
        return [(skill, self[f"skill__{skill.slug}"]) for skill in self.skills]

    def skill_levels(self) -> dict[str, int]:
        return {
            skill.slug: level
            for skill in self.skills
            if (level := self.cleaned_data.get(f"skill__{skill.slug}")) is not None
        }


class ShiftForm(forms.Form):
    weekday = forms.ChoiceField(
        choices=[
            *[(str(n), name) for n, name in enumerate(WEEKDAYS)],
            ("weekdays", "Mon\u2013Fri"),
            ("weekend", "Sat\u2013Sun"),
            ("every", "Every day"),
        ]
    )
    starts = forms.TimeField(widget=TIME)
    ends = forms.TimeField(widget=TIME)

    def weekdays(self) -> list[int]:
        value = self.cleaned_data["weekday"]
        return DAY_GROUPS.get(value) or [int(value)]


class NamedForm(forms.Form):
    """A skill or a team: a slug (what task types and rules name) and a display name."""

    name = forms.CharField(max_length=120)
    slug = forms.CharField(max_length=64)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        example = "night_shift" if self.prefix == "team" else "home_services"
        self.fields["slug"].widget.attrs["placeholder"] = f"e.g. {example}"
