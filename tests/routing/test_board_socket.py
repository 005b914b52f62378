"""The console socket's part in routing: presence from the heartbeat, and the board
re-rendered for a supervisor's tab that watches it (never for a reviewer's)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from routing.models import Presence, ReviewerProfile
from tests.console.test_consumers import connect, receive_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def nothing_more(comm, needle: str, wait: float = 0.6) -> None:
    """No frame containing `needle` comes before the socket stays quiet for `wait` seconds
    (receive_nothing, since a timed-out receive_from cancels the consumer)."""
    while not await comm.receive_nothing(timeout=wait):
        frame = await comm.receive_from()
        assert needle not in frame, frame[:300]


async def test_a_supervisors_board_follows_case_changes(supervisor, make_case):
    comm = await connect(supervisor)
    await comm.send_json_to({"action": "watch", "board": True})
    first = await receive_until(comm, 'id="board-live" hx-swap-oob="true"')
    assert "No open cases." in first

    case = await database_sync_to_async(make_case)()
    frame = await receive_until(comm, f'id="open-{case.pk}"')
    assert 'id="board-live" hx-swap-oob="true"' in frame
    await comm.disconnect()


async def test_a_reviewer_asking_for_the_board_gets_none(reviewer, make_case):
    comm = await connect(reviewer)
    await comm.send_json_to({"action": "watch", "inbox": "view=queue", "board": True})
    frame = await receive_until(comm, 'id="inbox-list"')
    assert "board-live" not in frame
    case = await database_sync_to_async(make_case)()
    frame = await receive_until(comm, f'id="case-row-{case.pk}"')
    assert "board-live" not in frame
    await nothing_more(comm, "board-live")
    await comm.disconnect()


async def test_an_open_console_puts_a_person_on_the_roster_online_and_pings_keep_it(reviewer):
    long_ago = timezone.now() - timedelta(hours=3)
    profile = await database_sync_to_async(ReviewerProfile.objects.create)(
        user=reviewer, presence=Presence.OFFLINE, last_seen_at=long_ago
    )
    comm = await connect(reviewer)
    await database_sync_to_async(profile.refresh_from_db)()
    assert profile.presence == Presence.ONLINE and profile.last_seen_at > long_ago
    connected_at = profile.last_seen_at

    await comm.send_json_to({"action": "watch", "inbox": "view=mine"})
    frame = await receive_until(comm, 'id="presence-switch"')  # the top bar's switch, afresh
    assert (
        'hx-swap-oob="true"' in frame
        and 'value="online" class="presence-online" aria-pressed="true"' in frame
    )

    await comm.send_json_to({"action": "ping"})
    await asyncio.sleep(0.2)
    await database_sync_to_async(profile.refresh_from_db)()
    assert profile.last_seen_at > connected_at

    # Away stays away: the heartbeat only says the tab is open.
    await database_sync_to_async(ReviewerProfile.objects.filter(pk=profile.pk).update)(
        presence=Presence.AWAY
    )
    await comm.send_json_to({"action": "ping"})
    await asyncio.sleep(0.2)
    await database_sync_to_async(profile.refresh_from_db)()
    assert profile.presence == Presence.AWAY
    await comm.disconnect()
