"""The demo roster from seed_demo: everyone can take every demo case at any hour, the
second run changes nothing, and the simulator's cases are offered as they arrive."""

from __future__ import annotations

import json
import random
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from escalations.audit import audit_verify
from escalations.demo_packages import demo_package
from escalations.models import AuditEvent, Escalation, Integration, PolicyRule, Status, TaskType
from escalations.schemas import HandoffIn
from escalations.services import escalation_ingest
from routing.assignment import HELD, loads, qualified
from routing.models import ReviewerProfile, Skill
from routing.selectors import WEEK_MINUTES, weekly_minutes
from routing.services import presence_seen

pytestmark = pytest.mark.django_db

DEMO_PEOPLE = {"reviewer1", "reviewer2", "supervisor1"}


def seed(tmp_path: Path) -> None:
    call_command("seed_demo", token_file=str(tmp_path / "token"), stdout=StringIO())


def roster_events() -> list[str]:
    return list(
        AuditEvent.objects.filter(verb__startswith="roster.").values_list("verb", flat=True)
    )


def test_seed_demo_puts_the_demo_people_on_the_roster_once(tmp_path: Path) -> None:
    seed(tmp_path)
    profiles = list(ReviewerProfile.objects.select_related("user", "team"))
    assert {p.user.username for p in profiles} == DEMO_PEOPLE
    needed = {s for t in TaskType.objects.all() for s in t.required_skills}
    needed |= set(PolicyRule.objects.exclude(skill="").values_list("skill", flat=True))
    assert needed <= set(Skill.objects.values_list("slug", flat=True))
    for profile in profiles:
        assert profile.team is not None and profile.team.slug == "care"
        assert profile.languages[0] == "en" and len(profile.languages) == 2
        assert 3 <= profile.capacity <= 5
        levels = dict(profile.skills.values_list("skill__slug", "proficiency"))
        assert set(levels) >= needed and set(levels.values()) == {3, 5}
        assert weekly_minutes(profile.shifts.all()) == WEEK_MINUTES, profile
    events = roster_events()
    assert events.count("roster.profile_added") == 3

    seed(tmp_path)
    assert roster_events() == events
    assert ReviewerProfile.objects.count() == 3
    assert audit_verify() == (AuditEvent.objects.count(), None)


def test_demo_cases_are_offered_to_whoever_has_the_console_open(tmp_path: Path) -> None:
    seed(tmp_path)
    for user in User.objects.filter(username__in=DEMO_PEOPLE):
        presence_seen(user=user)  # a console tab opens: online
    integration = Integration.objects.get(name="demo-agent")
    profiles = list(ReviewerProfile.objects.prefetch_related("skills__skill"))
    rng = random.Random(7)
    people_cases = 0
    for n in range(60):
        package = json.loads(json.dumps(demo_package(rng, n)))
        case = escalation_ingest(
            integration=integration, package=HandoffIn.model_validate(package)
        ).escalation
        case.refresh_from_db()
        if case.status == Status.AUTO_RESOLVED:
            continue
        people_cases += 1
        if case.status in HELD:
            continue
        # Waiting only because everyone who could take it is full.
        able = [p for p in profiles if qualified(p, case)]
        held = loads(p.user_id for p in able)
        assert able, (case.required_skills, case.language)
        assert all(held.get(p.user_id, 0) >= p.capacity for p in able), case
    assert people_cases >= 10
    assert Escalation.objects.filter(status__in=HELD).count() >= 10
