"""`manage.py seed_demo`: task types, rules, users, their roster profiles and an agent
integration for the demo.

Idempotent: what exists already is left as it is (an admin may have edited it), only what
is missing is created, and each creation is audited. The demo integration's token is
rotated on every run, because only its hash is stored and the simulator needs a working
token; it is printed and written to var/demo-agent.token (mode 600).

The demo users have known passwords: never run this against a production database.
"""

from __future__ import annotations

import os
from datetime import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from console.roles import ADMIN, REVIEWER, SUPERVISOR, roles_ensure
from console.services import user_create
from escalations import services
from escalations.audit import Actor
from escalations.models import Integration, Level, PolicyRule, Priority, TaskType
from escalations.policy_admin import rule_save, task_type_create
from routing.models import ReviewerProfile, Skill, Team
from routing.services import (
    roster_profile_add,
    roster_profile_change,
    roster_shifts_add,
    roster_skill_add,
    roster_team_add,
)

DEMO_INTEGRATION = "demo-agent"
DEMO_PASSWORD = "baton-demo"  # noqa: S105 -- the demo's published password, by design
DEMO_USERS = [
    ("reviewer1", REVIEWER),
    ("reviewer2", REVIEWER),
    ("supervisor1", SUPERVISOR),
    ("admin1", ADMIN),
]

# The demo roster: everyone has every skill the demo's task types and rules can ask for
# (proficiency 5 where they are strong, else 3), English and one more language, and
# shifts around the clock, so whoever opens the console is offered cases at any hour.
DEMO_TEAM = ("care", "Customer care")
DEMO_ROSTER: list[tuple[str, list[str], int, set[str]]] = [
    # username, languages, capacity, strong skills
    ("reviewer1", ["en", "de"], 4, {"support", "refunds", "billing", "retention", "sales"}),
    ("reviewer2", ["en", "es"], 3, {"insurance", "medical", "scheduling", "fraud", "lending"}),
    ("supervisor1", ["en", "fr"], 5, {"home_services", "emergency", "legal", "retention"}),
]
WHOLE_WEEK = list(range(7))

L1, L2, L3 = Level.AUTONOMOUS, Level.DRAFT_REVIEW, Level.FLAG_STOP
P1, P2, P3, P4 = Priority.P1, Priority.P2, Priority.P3, Priority.P4

# slug, name, description, level, autonomy, review, priority, sample rate, skills
TASK_TYPES: list[tuple[str, str, str, int, float, float, int, float, list[str]]] = [
    # customer support
    ("order_status", "Order status", "Where is my order: tracking and delivery dates.",
     L1, 0.80, 0.60, P4, 0.10, ["support"]),
    ("refund_request", "Refund request", "A refund for a product or service.",
     L2, 0.90, 0.70, P3, 0.05, ["refunds"]),
    ("subscription_cancellation", "Subscription cancellation",
     "Cancelling a plan; retention offers apply.", L2, 0.90, 0.70, P3, 0.05, ["retention"]),
    ("account_change", "Account change", "Changes to contact details or account holder.",
     L2, 0.90, 0.75, P3, 0.05, ["support"]),
    ("billing_dispute", "Billing dispute", "The customer disputes a charge or a renewal.",
     L2, 0.90, 0.75, P3, 0.05, ["billing"]),
    ("pricing_exception", "Pricing exception", "Discounts or terms beyond the agent's authority.",
     L2, 0.90, 0.75, P2, 0.05, ["sales"]),
    # finance
    ("fraud_alert", "Fraud alert", "Suspected unauthorised transactions.",
     L3, 0.95, 0.85, P2, 0.05, ["fraud"]),
    ("loan_hardship", "Loan hardship", "Customers who cannot repay: forbearance, plans.",
     L3, 0.95, 0.85, P2, 0.05, ["lending"]),
    # healthcare
    ("insurance_question", "Insurance question", "What a plan covers and what it costs.",
     L2, 0.85, 0.65, P3, 0.05, ["insurance"]),
    ("prescription_refill", "Prescription refill", "Repeat prescriptions and re-authorisation.",
     L2, 0.95, 0.80, P2, 0.05, ["medical"]),
    ("appointment_booking", "Appointment booking", "Routine appointments and reschedules.",
     L1, 0.80, 0.60, P4, 0.10, ["scheduling"]),
    # home services
    ("boiler_repair", "Boiler repair", "Heating and hot-water faults; engineer visits.",
     L2, 0.85, 0.65, P2, 0.05, ["home_services"]),
    ("gas_safety_check", "Gas safety check", "Annual gas safety inspections.",
     L2, 0.85, 0.65, P3, 0.05, ["home_services"]),
]  # fmt: skip

RULES: list[dict[str, Any]] = [
    {
        "code": "refund_over_500",
        "name": "Refund over 500",
        "description": "Refunds above the agent's limit are approved by a person.",
        "conditions": [{"key": "amount", "op": "gt", "value": 500}],
        "action_names": ["issue_refund"],
        "level": L2,
        "priority": P2,
        "skill": "refunds",
    },
    {
        "code": "chargeback",
        "name": "Chargeback threat",
        "description": "The customer mentions a chargeback or disputing the charge with a bank.",
        "keywords": ["chargeback", "charge back", "dispute the charge", "reverse the charge"],
        "level": L2,
        "priority": P2,
        "skill": "billing",
    },
    {
        "code": "cancel_subscription",
        "name": "Cancel subscription",
        "description": "Cancellations go to retention first.",
        "keywords": [
            "cancel subscription",
            "cancel my subscription",
            "cancel my plan",
            "end my contract",
        ],
        "level": L2,
        "skill": "retention",
    },
    {
        "code": "discount_over_20",
        "name": "Discount over 20%",
        "description": "Discounts above 20% need sales approval.",
        "conditions": [{"key": "discount_pct", "op": "gt", "value": 20}],
        "level": L2,
        "priority": P2,
        "skill": "sales",
        "task_types": ["pricing_exception"],
    },
    {
        "code": "vulnerable_customer",
        "name": "Vulnerable customer",
        "description": "Signs of financial or personal vulnerability.",
        "keywords": ["lost my job", "can't afford", "cannot afford", "bereavement", "passed away"],
        "level": L2,
        "priority": P2,
    },
]


class Command(BaseCommand):
    help = "Create the demo task types, rules, users and agent integration (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--token-file",
            default=None,
            help="Where to write the demo agent's token (default: var/demo-agent.token).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("seed_demo")
        roles_ensure()
        created_types = self._task_types(actor)
        created_rules = self._rules(actor)
        created_users = self._users()
        created_profiles = self._roster(actor)
        token = self._integration(actor)
        token_file = Path(options["token_file"] or settings.VAR_DIR / "demo-agent.token")
        _write_secret(token_file, token)

        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {created_types} task type(s), {created_rules} rule(s), "
                f"{created_users} user(s), {created_profiles} roster profile(s) created."
            )
        )
        self.stdout.write(f"Demo logins (password {DEMO_PASSWORD!r} unless you changed it):")
        for username, role in DEMO_USERS:
            self.stdout.write(f"  {username:<12} {role}")
        self.stdout.write(f"Demo agent token ({DEMO_INTEGRATION}): {token}")
        self.stdout.write(f"  written to {token_file}")

    def _task_types(self, actor: Actor) -> int:
        created = 0
        for slug, name, description, level, auto, review, priority, rate, skills in TASK_TYPES:
            if TaskType.objects.filter(slug=slug).exists():
                continue
            task_type_create(
                actor=actor,
                slug=slug,
                name=name,
                description=description,
                level=level,
                autonomy_threshold=auto,
                review_threshold=review,
                default_priority=priority,
                sample_rate=rate,
                required_skills=skills,
            )
            created += 1
        return created

    def _rules(self, actor: Actor) -> int:
        created = 0
        for spec in RULES:
            if PolicyRule.objects.filter(code=spec["code"]).exists():
                continue
            fields = {k: v for k, v in spec.items() if k != "task_types"}
            slugs = spec.get("task_types", [])
            rule_save(
                rule=None,
                actor=actor,
                task_types=list(TaskType.objects.filter(slug__in=slugs)),
                **fields,
            )
            created += 1
        return created

    def _users(self) -> int:
        User = get_user_model()
        created = 0
        for username, role in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                continue
            user_create(
                username=username,
                role=role,
                password=DEMO_PASSWORD,
                email=f"{username}@baton.example",
                actor=Actor.system("seed_demo"),
            )
            created += 1
        return created

    @transaction.atomic
    def _roster(self, actor: Actor) -> int:
        """Profiles for the demo people who have none (an existing one is left as it is)."""
        wanted = {slug for *_, skills in TASK_TYPES for slug in skills}
        wanted |= {rule["skill"] for rule in RULES if rule.get("skill")}
        wanted |= set(PolicyRule.objects.exclude(skill="").values_list("skill", flat=True))
        known = set(Skill.objects.values_list("slug", flat=True))
        for slug in sorted(wanted - known):
            roster_skill_add(actor=actor, slug=slug, name=slug.replace("_", " ").capitalize())
        team_slug, team_name = DEMO_TEAM
        team = Team.objects.filter(slug=team_slug).first() or roster_team_add(
            actor=actor, slug=team_slug, name=team_name
        )
        User = get_user_model()
        created = 0
        for username, languages, capacity, strong in DEMO_ROSTER:
            user = User.objects.filter(username=username).first()
            if user is None or ReviewerProfile.objects.filter(user=user).exists():
                continue
            profile = roster_profile_add(
                actor=actor, user=user, team=team, languages=languages, capacity=capacity
            )
            roster_profile_change(
                actor=actor,
                profile_id=profile.pk,
                team=team,
                languages=languages,
                capacity=capacity,
                skills={slug: 5 if slug in strong else 3 for slug in sorted(wanted)},
            )
            for starts, ends in ((time(0), time(12)), (time(12), time(0))):  # 12:00 to midnight
                roster_shifts_add(
                    actor=actor,
                    profile_id=profile.pk,
                    weekdays=WHOLE_WEEK,
                    starts=starts,
                    ends=ends,
                )
            created += 1
        return created

    def _integration(self, actor: Actor) -> str:
        integration = Integration.objects.filter(name=DEMO_INTEGRATION).first()
        if integration is None:
            _, token = services.integration_create(name=DEMO_INTEGRATION, actor=actor)
            return token
        return services.integration_rotate_token(integration=integration, actor=actor)


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.chmod(path, 0o600)  # the file may have existed with wider permissions
