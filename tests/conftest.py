"""Shared fixtures: an integration and its token, an API client, task types, packages.

Service gating: a test marked `postgres` needs the test database to be PostgreSQL, one
marked `redis` needs a Redis that answers and one marked `browser` Debian's Chromium on
PATH. Locally a missing service skips the test; in CI (CI=true) it fails it, so CI can
never go green without having run them.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from hypothesis import settings as hypothesis_settings

from escalations.models import Integration, Level, PolicyRule, Priority, TaskType
from escalations.services import integration_create
from tests.factories import TaskTypeFactory

FIXTURES = Path(__file__).parent / "fixtures"
API = "/api/v1"


# --- Hypothesis ------------------------------------------------------------------------------
# In CI the property tests draw the same examples on every run: a red CI always means a
# change broke something, never an unlucky draw. Locally they explore afresh each time.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
    hypothesis_settings.load_profile("ci")


# --- Service gating -------------------------------------------------------------------------


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _redis_url() -> str:
    return os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379"


def _redis_answers() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(_redis_url(), socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _missing_services(item: pytest.Item) -> list[str]:
    missing = []
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        missing.append(
            f"PostgreSQL (the test database is {connection.vendor}; set DATABASE_URL=postgres://…)"
        )
    if item.get_closest_marker("redis") and not _redis_answers():
        missing.append(f"Redis (no answer at {_redis_url()})")
    if item.get_closest_marker("browser") and not shutil.which("chromium"):
        missing.append("Chromium (no `chromium` on PATH; apt-get install chromium)")
    return missing


def pytest_runtest_setup(item: pytest.Item) -> None:
    missing = _missing_services(item)
    if not missing:
        return
    message = "needs " + " and ".join(missing)
    if _in_ci():
        pytest.fail(f"CI=true and this test {message}", pytrace=False)
    pytest.skip(message)


# --- Policy data ----------------------------------------------------------------------------


def _hard_rules_spec() -> list[dict[str, Any]]:
    import importlib

    return importlib.import_module("escalations.migrations.0003_hard_rules").HARD_RULES


@pytest.fixture
def hard_rules(db: None) -> list[PolicyRule]:
    """The hard rules migration 0003 seeds.

    A transactional test flushes the database afterwards, seeded rows included, so tests
    that rely on the hard rules ask for them here instead of trusting the migration.
    """
    rules = []
    for spec in _hard_rules_spec():
        rule, _ = PolicyRule.objects.get_or_create(
            code=spec["code"],
            defaults={
                "name": spec["name"],
                "description": spec["description"],
                "keywords": spec["keywords"],
                "pattern": spec.get("pattern", ""),
                "action_names": spec.get("action_names", []),
                "level": spec["level"],
                "priority": spec["priority"],
                "skill": spec["skill"],
                "hard": True,
            },
        )
        rules.append(rule)
    return rules


@pytest.fixture
def task_types(db: None, hard_rules: list[PolicyRule]) -> dict[str, TaskType]:
    """The task types the packages under tests/fixtures/ name."""
    return {
        "order_status": TaskTypeFactory(
            slug="order_status", name="Order status", level=Level.AUTONOMOUS
        ),
        "pricing_question": TaskTypeFactory(
            slug="pricing_question",
            name="Pricing question",
            level=Level.DRAFT_REVIEW,
            required_skills=["pricing"],
        ),
        "refund_request": TaskTypeFactory(
            slug="refund_request",
            name="Refund request",
            level=Level.AUTONOMOUS,
            autonomy_threshold=0.8,
            review_threshold=0.6,
            required_skills=["refunds"],
        ),
        "utility_support": TaskTypeFactory(
            slug="utility_support",
            name="Utility support",
            level=Level.AUTONOMOUS,
            default_priority=Priority.P3,
        ),
    }


# --- Integrations and clients -----------------------------------------------------------------


@pytest.fixture
def integration_and_token(db: None) -> tuple[Integration, str]:
    return integration_create(name="Acme support bot", callback_url="https://agent.example.com/cb")


@pytest.fixture
def integration(integration_and_token: tuple[Integration, str]) -> Integration:
    return integration_and_token[0]


@pytest.fixture
def token(integration_and_token: tuple[Integration, str]) -> str:
    return integration_and_token[1]


def bearer_client(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def api_client(token: str, task_types: dict[str, TaskType]) -> Client:
    """A test client that authenticates as the integration, with the task types in place."""
    return bearer_client(token)


@pytest.fixture
def other_client(db: None, task_types: dict[str, TaskType]) -> Client:
    """A client for a second, unrelated integration."""
    _, other_token = integration_create(name="Other vendor bot")
    return bearer_client(other_token)


# --- Packages ---------------------------------------------------------------------------------


def load_fixture(name: str) -> dict[str, Any]:
    """A handoff package from tests/fixtures/ (a fresh copy each time)."""
    path = FIXTURES / (name if name.endswith(".json") else f"{name}.json")
    return copy.deepcopy(json.loads(path.read_text()))


@pytest.fixture
def package() -> Callable[[str], dict[str, Any]]:
    return load_fixture


def post_json(client: Client, path: str, body: Any) -> Any:
    return client.post(
        f"{API}{path}",
        data=body if isinstance(body, (str, bytes)) else json.dumps(body),
        content_type="application/json",
    )
