"""People with roles, and cases for them to work; imported by the conftest files that need them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from console.roles import roles_ensure
from escalations.models import Escalation, Integration, Level, TaskType
from escalations.schemas import HandoffIn
from escalations.services import escalation_ingest, integration_create
from tests.factories import TaskTypeFactory


def make_user(username: str, role: str | None) -> User:
    user = User.objects.create_user(username=username, password="pw", first_name=username.title())
    if role:
        roles_ensure()[role].user_set.add(user)
    return User.objects.get(pk=user.pk)  # fresh, so no permission cache


@pytest.fixture
def reviewer(db: None) -> User:
    return make_user("ann", "reviewer")


@pytest.fixture
def reviewer2(db: None) -> User:
    return make_user("bob", "reviewer")


@pytest.fixture
def supervisor(db: None) -> User:
    return make_user("sue", "supervisor")


@pytest.fixture
def nobody(db: None) -> User:
    """Signed in, but with no role."""
    return make_user("nora", None)


@pytest.fixture
def review_type(db: None) -> TaskType:
    return TaskTypeFactory(slug="refund_review", name="Refund review", level=Level.DRAFT_REVIEW)


@pytest.fixture
def agent(db: None) -> Integration:
    return integration_create(name="Case agent", callback_url="")[0]


def case_package(n: int = 1, **overrides: Any) -> dict[str, Any]:
    package = {
        "external_id": f"case-{n}",
        "task_type": "refund_review",
        "summary": f"Customer {n} wants a refund of 80 EUR for a late delivery.",
        "reason": "Refunds need a person's approval.",
        "confidence": 0.9,
        "customer": {"id": f"cust-{n}", "name": f"Customer {n}", "tier": "standard"},
        "transcript": [
            {"role": "customer", "text": "My parcel came a week late, I want my money back."},
            {"role": "agent", "text": "I can propose a refund; a colleague will confirm."},
        ],
        "proposed_action": {"name": "issue_refund", "args": {"amount": 80, "currency": "EUR"}},
        "draft_response": "I have refunded 80 EUR to your card.",
    }
    package.update(overrides)
    return package


@pytest.fixture
def make_case(agent: Integration, review_type: TaskType) -> Callable[..., Escalation]:
    counter = iter(range(1, 10_000))

    def make(**overrides: Any) -> Escalation:
        package = HandoffIn.model_validate(case_package(next(counter), **overrides))
        return escalation_ingest(integration=agent, package=package).escalation

    return make
