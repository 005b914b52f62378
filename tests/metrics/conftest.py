"""A small history built by hand, with known timestamps, for the metrics to be checked
against figures worked out on paper (the comments give them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from escalations.decisions import edit_size
from escalations.models import Decision, Escalation, Feedback, Integration, Status, TaskType
from escalations.services import integration_create
from metrics.models import EvaluationTally
from metrics.queries import MetricFilter
from routing.models import ReviewerProfile, Team
from tests.factories import TaskTypeFactory
from tests.people import make_user, nobody, reviewer, supervisor  # noqa: F401  (fixtures)

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
PERIOD = MetricFilter(start=T0 - timedelta(days=1), end=T0 + timedelta(days=10))


@dataclass
class History:
    refund: TaskType
    order: TaskType
    ann: User
    bob: User
    billing: Team
    support: Team
    cases: dict[int, Escalation]


def _trigger(code: str, rule: str | None = None) -> dict[str, Any]:
    return {"code": code, "detail": code, "level": 2, "rule": rule, "hard": False}


class _Builder:
    def __init__(self, integration: Integration) -> None:
        self.integration = integration

    def case(
        self,
        n: int,
        task_type: TaskType,
        *,
        level: int = 2,
        priority: int = 3,
        status: str = Status.RESOLVED,
        hours: float = 0,
        accepted: float | None = None,
        closed: float | None = None,
        due: datetime | float | None = None,
        triggers: list[dict[str, Any]] | None = None,
        assignee: User | None = None,
        escalation_count: int = 0,
        breached: bool = False,
    ) -> Escalation:
        created = T0 + timedelta(hours=hours)
        after = lambda s: None if s is None else created + timedelta(seconds=s)  # noqa: E731
        triggers = triggers or []
        case = Escalation.objects.create(
            integration=self.integration,
            external_id=f"m-{n}",
            package_sha256="0" * 64,
            package={},
            task_type=task_type,
            task_type_version=1,
            summary=f"case {n}",
            reason="test",
            confidence=0.5,
            level=level,
            priority=priority,
            status=status,
            instruction="wait",
            triggers=triggers,
            trigger_codes=Escalation.codes_of(triggers),
            assignee=assignee,
            escalation_count=escalation_count,
        )
        Escalation.objects.filter(pk=case.pk).update(
            created_at=created,
            accepted_at=after(accepted),
            closed_at=after(closed),
            sla_resolve_due=due if isinstance(due, datetime) else after(due),
            sla_breached_at=created + timedelta(hours=3) if breached else None,
        )
        case.refresh_from_db()
        return case

    @staticmethod
    def decide(
        case: Escalation,
        reviewer: User,
        verb: str,
        seconds: float,
        *,
        final: bool = True,
        diff: dict[str, Any] | None = None,
    ) -> Decision:
        return Decision.objects.create(
            escalation=case,
            reviewer=reviewer,
            verb=verb,
            final=final,
            case_version=1,
            diff=diff or {},
            edit_size=edit_size(diff or {}),
            seconds_to_decide=seconds,
        )


EDIT_4 = {  # 3 draft lines changed (2 added, 1 removed) + 1 argument = 4
    "draft": [
        "--- draft",
        "+++ edited",
        "@@ -1,2 +1,3 @@",
        " Hello,",
        "-we refund 80 EUR.",
        "+we refund 50 EUR.",
        "+Kind regards",
    ],
    "args": {"amount": {"from": 80, "to": 50}},
}
EDIT_2 = {"draft": ["--- draft", "+++ edited", "@@ -1 +1 @@", "-Hi", "+Hello"]}  # 2


@pytest.fixture
def history(db: None) -> History:
    integration = integration_create(name="Metrics agent", callback_url="")[0]
    refund = TaskTypeFactory(slug="refund_review", name="Refund review")
    order = TaskTypeFactory(slug="order_status", name="Order status")
    billing = Team.objects.create(slug="billing", name="Billing")
    support = Team.objects.create(slug="support", name="Support")
    ann = make_user("ann", "reviewer")
    bob = make_user("bob", "reviewer")
    ReviewerProfile.objects.create(user=ann, team=billing)
    ReviewerProfile.objects.create(user=bob, team=support)
    b = _Builder(integration)
    low, sentiment = _trigger("low_confidence"), _trigger("sentiment")
    refund_limit = _trigger("policy_rule", "refund_limit")
    future = timezone.now() + timedelta(days=1)
    c = {
        1: b.case(1, refund, priority=2, accepted=60, closed=600, due=3600, triggers=[low],
                  assignee=ann),
        2: b.case(2, refund, priority=2, hours=1, accepted=120, closed=1200, due=900,
                  triggers=[refund_limit], assignee=ann),
        3: b.case(3, refund, level=3, hours=2, accepted=300, closed=3000, due=7200,
                  triggers=[refund_limit, _trigger("policy_rule", "abusive_language"), sentiment],
                  assignee=bob, escalation_count=1),
        4: b.case(4, refund, hours=3, accepted=30, closed=90, due=7200, triggers=[low],
                  assignee=bob),
        5: b.case(5, refund, status=Status.QUEUED, hours=4, due=1800,
                  triggers=[_trigger("agent_requested")], breached=True),
        6: b.case(6, order, level=1, status=Status.AUTO_RESOLVED, hours=5),
        7: b.case(7, order, level=1, status=Status.AUTO_RESOLVED, hours=6,
                  triggers=[_trigger("policy_rule", "vip_customer")]),
        8: b.case(8, order, priority=4, hours=7, accepted=10, closed=40, due=86400,
                  triggers=[low], assignee=ann),
        9: b.case(9, order, priority=4, status=Status.IN_REVIEW, hours=8, accepted=50,
                  due=future, triggers=[sentiment], assignee=ann),
        10: b.case(10, refund, priority=2, hours=-24 * 5, accepted=5, closed=50, due=3600,
                   triggers=[low], assignee=ann),  # before the period: counted nowhere
        11: b.case(11, order, hours=9, accepted=20, closed=30, due=7200, triggers=[low],
                   assignee=bob),
    }  # fmt: skip
    b.decide(c[1], ann, "approve", 5)
    b.decide(c[2], ann, "edit", 40, diff=EDIT_4)
    b.decide(c[3], ann, "escalate", 15, final=False)
    b.decide(c[3], bob, "reject", 100)
    b.decide(c[4], bob, "approve", 20)
    b.decide(c[7], bob, "reverse", 200)
    b.decide(c[8], ann, "approve", 3)
    b.decide(c[10], ann, "approve", 2)
    b.decide(c[11], bob, "edit", 60, diff=EDIT_2)
    for n, csat, effort in [(1, 5, 2), (2, 3, 4), (3, 1, 6), (8, 4, None), (10, 1, 7)]:
        Feedback.objects.create(escalation=c[n], csat=csat, effort=effort)
    day = T0.date()
    EvaluationTally.objects.create(day=day, integration=integration, task_type=refund, count=10)
    EvaluationTally.objects.create(
        day=day - timedelta(days=5), integration=integration, task_type=refund, count=5
    )
    EvaluationTally.objects.create(day=day, integration=integration, task_type=order, count=20)
    return History(refund, order, ann, bob, billing, support, c)
