"""The console websocket through WebsocketCommunicator: auth, origin, roles, live HTML, actions."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from console.asgi import application
from escalations.decisions import escalation_accept
from escalations.models import Decision, Status
from escalations.schemas import TranscriptTurn
from escalations.services import escalation_append_messages

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def communicator(user=None, origin: str = "http://localhost") -> WebsocketCommunicator:
    headers = [(b"origin", origin.encode())]
    if user is not None:
        headers.append((b"cookie", f"sessionid={session_cookie(user)}".encode()))
    return WebsocketCommunicator(application, "/ws/console/", headers=headers)


async def connect(user, origin: str = "http://localhost") -> WebsocketCommunicator:
    comm = await database_sync_to_async(communicator)(user, origin)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def receive_until(comm: WebsocketCommunicator, needle: str, timeout: float = 3) -> str:
    """Every frame until one contains `needle`; fails after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    seen = []
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise AssertionError(f"{needle!r} never came; got {seen!r}")
        try:
            frame = await comm.receive_from(timeout=left)
        except TimeoutError:
            continue
        seen.append(frame[:300])
        if needle in frame:
            return frame


async def test_anonymous_connection_is_refused(db):
    comm = communicator()
    connected, code = await comm.connect()
    assert not connected and code == 4403
    await comm.disconnect()


async def test_a_foreign_origin_is_refused(reviewer):
    comm = await database_sync_to_async(communicator)(reviewer, "https://evil.example")
    connected, _ = await comm.connect()
    assert not connected
    await comm.disconnect()


async def test_a_user_without_a_role_is_refused(nobody):
    comm = await database_sync_to_async(communicator)(nobody)
    connected, code = await comm.connect()
    assert not connected and code == 4403
    await comm.disconnect()


async def test_watching_the_inbox_renders_it_and_new_cases_arrive_live(supervisor, make_case):
    first = await database_sync_to_async(make_case)()
    comm = await connect(supervisor)
    try:
        await comm.send_json_to({"action": "watch", "inbox": "view=all", "case": None})
        frame = await receive_until(comm, 'id="inbox-list"')
        assert 'hx-swap-oob="true"' in frame and f"case-row-{first.pk}" in frame
        second = await database_sync_to_async(make_case)(summary="A <b>brand</b> new case")
        frame = await receive_until(comm, f"case-row-{second.pk}")
        assert "A &lt;b&gt;brand&lt;/b&gt; new case" in frame
    finally:
        await comm.disconnect()


async def test_a_reviewer_asking_for_all_gets_only_their_own_cases(reviewer, reviewer2, make_case):
    held = await database_sync_to_async(make_case)()
    await database_sync_to_async(escalation_accept)(
        escalation_id=held.pk, reviewer=reviewer2, version=held.version
    )
    comm = await connect(reviewer)
    try:
        await comm.send_json_to({"action": "watch", "inbox": "view=all", "case": None})
        frame = await receive_until(comm, 'id="inbox-list"')
        assert f"case-row-{held.pk}" not in frame
        assert "Nothing assigned to you" in frame
    finally:
        await comm.disconnect()


async def test_watching_a_missing_case_is_refused(reviewer):
    comm = await connect(reviewer)
    try:
        await comm.send_json_to({"action": "watch", "case": 999999})
        await receive_until(comm, "You may not see that case")
    finally:
        await comm.disconnect()


async def test_decide_over_the_socket_and_the_loser_is_told(reviewer, reviewer2, make_case):
    case = await database_sync_to_async(make_case)()
    ann, bob = await connect(reviewer), await connect(reviewer2)
    try:
        for comm in (ann, bob):
            await comm.send_json_to({"action": "watch", "inbox": None, "case": case.pk})
            await receive_until(comm, 'id="case-actions"')
        decide = {"action": "decide", "case": case.pk, "version": case.version}
        await ann.send_json_to({**decide, "verb": "approve", "HEADERS": {}})
        await receive_until(ann, "Approved: the agent goes ahead.")
        # Bob's page updates live to resolved, then his late click is refused.
        await receive_until(bob, "Resolved")
        await bob.send_json_to({**decide, "verb": "reject", "reason": "no"})
        frame = await receive_until(bob, "already decided")
        assert "Ann already decided this case" in frame
    finally:
        await ann.disconnect()
        await bob.disconnect()
    decisions = await database_sync_to_async(list)(Decision.objects.filter(escalation=case))
    assert [d.verb for d in decisions] == ["approve"]


async def test_an_invalid_decision_names_the_field(reviewer, make_case):
    case = await database_sync_to_async(make_case)()
    comm = await connect(reviewer)
    try:
        await comm.send_json_to(
            {"action": "decide", "case": case.pk, "version": case.version, "verb": "reject"}
        )
        frame = await receive_until(comm, "The decision is incomplete")
        assert "reason" in frame
    finally:
        await comm.disconnect()
    await database_sync_to_async(case.refresh_from_db)()
    assert case.status == Status.QUEUED


async def test_viewers_and_appended_messages_show_live(reviewer, supervisor, make_case, agent):
    case = await database_sync_to_async(make_case)()
    ann, sue = await connect(reviewer), await connect(supervisor)
    try:
        await ann.send_json_to({"action": "watch", "case": case.pk})
        await receive_until(ann, 'id="transcript"')
        await sue.send_json_to({"action": "watch", "case": case.pk})
        await receive_until(ann, "Also viewing: Sue")
        await database_sync_to_async(escalation_append_messages)(
            integration=agent,
            escalation_id=case.pk,
            turns=[TranscriptTurn(role="customer", text="Any news <b>yet</b>?")],
        )
        frame = await receive_until(ann, "Any news &lt;b&gt;yet&lt;/b&gt;?")
        assert "new while waiting" in frame
        await sue.disconnect()
        await receive_until(
            ann, '<div id="viewers" class="viewers" hx-swap-oob="true" aria-live="polite"></div>'
        )
    finally:
        await ann.disconnect()


# --- shared renders, leading edge, unchanged lists (console/consumers.py) ------------------


def rostered(user, skills: list[str]) -> None:
    from routing.models import ReviewerProfile, ReviewerSkill, Skill

    profile = ReviewerProfile.objects.create(user=user, languages=["en"], capacity=3)
    for slug in skills:
        skill, _ = Skill.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
        ReviewerSkill.objects.create(profile=profile, skill=skill)


def needs_skill(case, slug: str) -> None:
    from routing.models import Skill

    Skill.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
    case.set_required_skills([slug])
    case.save(update_fields=["required_skills", "skill_codes"])


async def test_consoles_showing_the_same_list_share_one_render_per_event(
    supervisor, reviewer, reviewer2, make_case
):
    from console.consumers import INBOX_RENDERS
    from console.services import user_create

    boss2 = await database_sync_to_async(user_create)(username="sam", role="supervisor")
    tabs = [await connect(user) for user in (supervisor, supervisor, boss2[0])]
    try:
        for comm in tabs:
            await comm.send_json_to({"action": "watch", "inbox": "view=all", "case": None})
            await receive_until(comm, 'id="inbox-list"')
        before = INBOX_RENDERS.renders
        case = await database_sync_to_async(make_case)()
        for comm in tabs:
            await receive_until(comm, f"case-row-{case.pk}")
        assert INBOX_RENDERS.renders - before == 1  # three tabs, two people, one render
    finally:
        for comm in tabs:
            await comm.disconnect()


async def test_a_shared_render_never_crosses_what_each_person_may_see(
    supervisor, reviewer, reviewer2, make_case
):
    """Same query string, different lists: a reviewer's `view=all` is their own cases, and
    two reviewers' queues differ by their skills."""
    await database_sync_to_async(rostered)(reviewer, ["refunds", "legal"])
    await database_sync_to_async(rostered)(reviewer2, ["refunds"])
    boss, ann_all = await connect(supervisor), await connect(reviewer)
    ann_queue, bob_queue = await connect(reviewer), await connect(reviewer2)
    try:
        watches = [
            (boss, "view=all"),
            (ann_all, "view=all"),
            (ann_queue, "view=queue"),
            (bob_queue, "view=queue"),
        ]
        for comm, inbox in watches:
            await comm.send_json_to({"action": "watch", "inbox": inbox, "case": None})
            await receive_until(comm, 'id="inbox-list"')

        def legal_case():
            case = make_case(summary="A legal matter")
            needs_skill(case, "legal")
            return case

        case = await database_sync_to_async(legal_case)()
        await database_sync_to_async(make_case)(summary="A plain refund")  # a second event
        assert f"case-row-{case.pk}" in await receive_until(boss, "A plain refund")
        assert f"case-row-{case.pk}" in await receive_until(ann_queue, "A plain refund")
        assert f"case-row-{case.pk}" not in await receive_until(bob_queue, "A plain refund")
        # Ann's "all" is her own cases: none, so her list did not change and nothing came.
        assert await ann_all.receive_nothing(timeout=0.5)
    finally:
        for comm in (boss, ann_all, ann_queue, bob_queue):
            await comm.disconnect()


async def test_an_event_after_a_quiet_spell_renders_at_once(supervisor, make_case, monkeypatch):
    """Leading edge: the coalescing window only delays what follows a render."""
    monkeypatch.setattr("console.consumers.DEBOUNCE_SECONDS", 30)
    comm = await connect(supervisor)
    try:
        await comm.send_json_to({"action": "watch", "inbox": "view=all", "case": None})
        await receive_until(comm, 'id="inbox-list"')
        case = await database_sync_to_async(make_case)()
        await receive_until(comm, f"case-row-{case.pk}", timeout=3)
    finally:
        await comm.disconnect()


async def test_a_burst_of_events_coalesces_into_one_more_render(supervisor, make_case, monkeypatch):
    from console.consumers import INBOX_RENDERS

    monkeypatch.setattr("console.consumers.DEBOUNCE_SECONDS", 0.5)
    comm = await connect(supervisor)
    try:
        await comm.send_json_to({"action": "watch", "inbox": "view=all", "case": None})
        await receive_until(comm, 'id="inbox-list"')
        before = INBOX_RENDERS.renders

        def burst():
            return [make_case() for _ in range(4)]

        cases = await database_sync_to_async(burst)()
        frame = await receive_until(comm, f"case-row-{cases[-1].pk}", timeout=5)
        assert all(f"case-row-{case.pk}" in frame for case in cases)
        assert await comm.receive_nothing(timeout=0.7)
        # The first event rendered at once, the rest within one window: a few, not four+.
        assert INBOX_RENDERS.renders - before <= 3
    finally:
        await comm.disconnect()
