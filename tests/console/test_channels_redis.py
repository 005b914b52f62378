"""The console's live events over channels-redis and a real Redis (DESIGN §8).

Production runs several server processes; only a shared channel layer carries an event
from the process that committed a change to the consoles connected to the others. Here a
case is ingested in another thread with its own event loop, database connection and Redis
connection, and a console's socket receives the re-rendered inbox through Redis.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer
from django.db import connections
from pytest_django.fixtures import Settings

from console.events import CONSOLE_GROUP
from escalations.models import Escalation
from tests.console.test_consumers import communicator, receive_until

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_prefix(settings: Settings) -> str:
    """channels-redis on REDIS_URL, under a prefix of this test's own."""
    prefix = f"baton-test-{uuid.uuid4().hex[:12]}"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": prefix},
        }
    }
    return prefix


def in_own_thread(make: Callable[[], Escalation]) -> Escalation:
    """`make` in a plain thread: `async_to_sync` publishes from an event loop of its own."""
    try:
        return make()
    finally:
        connections.close_all()


async def test_a_case_ingested_elsewhere_reaches_a_console_through_redis(
    redis_prefix: str, supervisor, make_case
) -> None:
    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer) and layer.prefix == redis_prefix
    comm: WebsocketCommunicator = await database_sync_to_async(communicator)(supervisor)
    try:
        connected, _ = await comm.connect()
        assert connected
        await comm.send_json_to({"action": "watch", "inbox": "view=all", "case": None})
        frame = await receive_until(comm, 'id="inbox-list"')
        assert "No cases here." in frame
        members = await layer.connection(layer.consistent_hash(CONSOLE_GROUP)).zcard(
            layer._group_key(CONSOLE_GROUP)
        )
        assert members == 1  # the console's channel is in the group, in Redis

        loop = asyncio.get_running_loop()
        case = await loop.run_in_executor(None, in_own_thread, make_case)

        frame = await receive_until(comm, f"case-row-{case.pk}", timeout=5)
        assert 'id="inbox-list" hx-swap-oob="true"' in frame
        assert case.summary in frame
    finally:
        await comm.disconnect()
        await layer.flush()  # every key under the prefix
        await layer.close_pools()
