"""The services Baton runs on in production, and the gating of the tests that need them."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.test import Client, override_settings

import tests.conftest as shared


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_database_is_postgresql_with_the_audit_guard() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'baton_audit_append_only'")
        assert cursor.fetchone() == (1,)


@pytest.mark.redis
def test_redis_channel_layer_round_trip() -> None:
    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [shared._redis_url()]},
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):
        layer = get_channel_layer()
        marker = uuid.uuid4().hex

        async def round_trip() -> dict[str, Any]:
            channel = await layer.new_channel("test.")
            await layer.send(channel, {"type": "test.ping", "marker": marker})
            message = await layer.receive(channel)
            await layer.flush()
            return message

        assert type(layer).__name__ == "RedisChannelLayer"
        assert async_to_sync(round_trip)()["marker"] == marker


@pytest.mark.redis
@pytest.mark.django_db
def test_health_check_reports_the_redis_channel_layer() -> None:
    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [shared._redis_url()]},
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):
        body = Client().get("/healthz").json()

    assert body["channel_layer"]["ok"] is True, body
    assert body["channel_layer"]["backend"] == "RedisChannelLayer"
    assert body["database"]["ok"] is True


# --- The gating itself --------------------------------------------------------------------------


class Item:
    def __init__(self, *markers: str) -> None:
        self.markers = markers

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name in self.markers else None


@pytest.fixture
def no_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared, "connection", SimpleNamespace(vendor="sqlite"))
    monkeypatch.setattr(shared, "_redis_answers", lambda: False)


@pytest.mark.parametrize("marker", ["postgres", "redis"])
def test_missing_service_skips_locally(
    no_services: None, monkeypatch: pytest.MonkeyPatch, marker: str
) -> None:
    monkeypatch.delenv("CI", raising=False)

    with pytest.raises(pytest.skip.Exception, match="needs"):
        shared.pytest_runtest_setup(Item(marker))  # type: ignore[arg-type]


@pytest.mark.parametrize("marker", ["postgres", "redis"])
def test_missing_service_fails_in_ci(
    no_services: None, monkeypatch: pytest.MonkeyPatch, marker: str
) -> None:
    monkeypatch.setenv("CI", "true")

    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        shared.pytest_runtest_setup(Item(marker))  # type: ignore[arg-type]


def test_unmarked_tests_need_nothing(no_services: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")

    shared.pytest_runtest_setup(Item())  # type: ignore[arg-type]


def test_present_services_run_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(shared, "connection", SimpleNamespace(vendor="postgresql"))
    monkeypatch.setattr(shared, "_redis_answers", lambda: True)

    shared.pytest_runtest_setup(Item("postgres", "redis"))  # type: ignore[arg-type]
