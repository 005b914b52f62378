"""The console websocket (DESIGN §8): one per open tab, authenticated by the session.

Services publish `case.changed` after commit; this consumer turns each event into HTML
for its own user (permissions applied by the selectors) and sends it for htmx to swap
out of band. It also takes the reviewer's actions, calling the same services as the
HTTP forms. The database is the truth: on every (re)connect the tab says what it shows
and gets it re-rendered.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from console import rendering, viewers
from console.events import CONSOLE_GROUP, SUPERVISORS_GROUP, case_group
from escalations import selectors
from escalations.decisions import escalation_accept, escalation_decide
from escalations.errors import BatonError
from routing import rendering as routing_rendering
from routing.services import presence_seen

# After a render, further events within this window coalesce into one more render per tab.
# The first event of a quiet spell renders at once (leading edge), so a decision reaches
# consoles without waiting; a burst (an agent posting many cases) costs one render per tab
# per window, which bounds the renders a process does to audiences / window.
DEBOUNCE_SECONDS = 0.15
SUPERVISE = "escalations.reassign_escalation"


class SharedRenders:
    """One render per audience and moment for the consoles of this process.

    A console that needs HTML for `key` fresh as of `fresh_after` (loop time) awaits a
    render of that key started at or after that time, if one exists, instead of making its
    own: a decision seen by 200 consoles showing the same list costs one query and one
    template render, not 200. Correctness rests on the events being sent after commit: a
    render started after an event was first received here reads what that event announced.
    """

    LIMIT = 2000  # audiences remembered; older entries are dropped first

    def __init__(self) -> None:
        self.entries: OrderedDict[Hashable, tuple[float, asyncio.Future[str]]] = OrderedDict()
        self.renders = 0  # renders started, for tests and benchmarks

    async def get(
        self, key: Hashable, *, fresh_after: float, render: Callable[[], Awaitable[str]]
    ) -> str:
        loop = asyncio.get_running_loop()
        entry = self.entries.get(key)
        if entry is not None and entry[0] >= fresh_after and entry[1].get_loop() is loop:
            return await asyncio.shield(entry[1])
        future: asyncio.Future[str] = asyncio.ensure_future(render())
        self.renders += 1
        self.entries[key] = (loop.time(), future)
        self.entries.move_to_end(key)
        while len(self.entries) > self.LIMIT:
            self.entries.popitem(last=False)
        # Shielded: one console disconnecting mid-render must not cancel the others' render.
        return await asyncio.shield(future)


INBOX_RENDERS = SharedRenders()

# When this process first received each event (loop time), so every console it reaches
# asks for a render fresh as of that moment and they all share it.
_FIRST_SEEN: OrderedDict[str, float] = OrderedDict()
_FIRST_SEEN_LIMIT = 10_000


def event_first_seen(event: dict[str, Any]) -> float:
    now = asyncio.get_running_loop().time()
    event_id = event.get("event")
    if not isinstance(event_id, str):
        return now
    seen = _FIRST_SEEN.setdefault(event_id, now)
    if len(_FIRST_SEEN) > _FIRST_SEEN_LIMIT:
        _FIRST_SEEN.popitem(last=False)
    return seen


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.user = self.scope.get("user")
        if not await database_sync_to_async(selectors.may_work)(self.user):
            await self.close(code=4403)
            return
        self.inbox_query: dict[str, str] | None = None
        self.inbox_audience: Hashable = None  # who else sees the same rows (SharedRenders)
        self.inbox_fresh_after = 0.0  # loop time the next inbox render must start after
        self.inbox_sent: str | None = None  # the rows last sent, not to send them again
        self.case_id: int | None = None
        self.case_version: int | None = None
        self.pending: asyncio.Task[None] | None = None
        self.dirty_inbox = False
        self.dirty_case = False
        self.dirty_notify: int | None = None
        self.board = False  # the tab shows the supervisor board (set by `watch`)
        self.dirty_board = False
        self.dirty_presence = False
        self.csrf_token = self.scope.get("cookies", {}).get("csrftoken", "")
        await self.channel_layer.group_add(CONSOLE_GROUP, self.channel_name)
        # SLA alerts go to those who may act on them (reassign); checked once per tab.
        self.supervising = await database_sync_to_async(self.user.has_perm)(SUPERVISE)
        if self.supervising:
            await self.channel_layer.group_add(SUPERVISORS_GROUP, self.channel_name)
        await database_sync_to_async(presence_seen)(user=self.user)  # an open console: online
        await self.accept()

    async def disconnect(self, code: int) -> None:
        pending = getattr(self, "pending", None)
        if pending is not None and not pending.done():
            pending.cancel()
        await self.channel_layer.group_discard(CONSOLE_GROUP, self.channel_name)
        if getattr(self, "supervising", False):
            await self.channel_layer.group_discard(SUPERVISORS_GROUP, self.channel_name)
        case_id = getattr(self, "case_id", None)
        if case_id is not None:
            await self.channel_layer.group_discard(case_group(case_id), self.channel_name)
            await database_sync_to_async(viewers.viewer_leave)(channel_name=self.channel_name)

    # --- from the browser ---------------------------------------------------------------

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            return
        action = content.get("action")
        if action == "watch":
            await self.watch(content)
        elif action == "ping":
            await database_sync_to_async(presence_seen)(user=self.user)
            if self.inbox_query is not None:  # skills may have moved on the roster
                self.inbox_audience = await self._audience(self.inbox_query)
            if self.board:  # presence and shifts move without case events
                self.dirty_board = True
                await self.flush()
            if self.case_id is not None:
                await database_sync_to_async(viewers.viewer_heartbeat)(
                    channel_name=self.channel_name
                )
        elif action in ("accept", "decide"):
            await self.act(action, content)
        else:
            await self.send_html(rendering.notice(f"Unknown action {action!r}.", level="error"))

    async def watch(self, content: dict[str, Any]) -> None:
        inbox = content.get("inbox")
        self.inbox_query = (
            dict(parse_qsl(str(inbox).lstrip("?"))) if isinstance(inbox, str) else None
        )
        if self.inbox_query is not None:
            self.inbox_audience = await self._audience(self.inbox_query)
        # The tab shows what its page rendered: send the rows afresh from now on.
        self.inbox_sent = None
        self.inbox_fresh_after = asyncio.get_running_loop().time()
        case_id = _int(content.get("case"))
        previous = self.case_id
        if case_id != previous:
            if previous is not None:
                await self.channel_layer.group_discard(case_group(previous), self.channel_name)
                await database_sync_to_async(viewers.viewer_leave)(channel_name=self.channel_name)
            self.case_id, self.case_version = case_id, None
            if case_id is not None:
                visible = await database_sync_to_async(self._may_see)(case_id)
                if not visible:
                    self.case_id = None
                    await self.send_html(
                        rendering.notice("You may not see that case.", level="error")
                    )
                else:
                    await self.channel_layer.group_add(case_group(case_id), self.channel_name)
                    await database_sync_to_async(viewers.viewer_watch)(
                        user=self.user, escalation_id=case_id, channel_name=self.channel_name
                    )
        # Resync: whatever the tab shows is rendered afresh from the database, except the
        # decision panel when the tab already shows the current version of it.
        self.dirty_inbox = self.inbox_query is not None
        self.dirty_case = self.case_id is not None
        self.board = self.dirty_board = content.get("board") is True and self.supervising
        self.dirty_presence = True
        self.case_version = _int(content.get("version")) if self.case_id is not None else None
        await self.flush()

    async def _audience(self, query: dict[str, str]) -> Hashable:
        return await database_sync_to_async(rendering.inbox_audience)(user=self.user, query=query)

    def _may_see(self, case_id: int) -> bool:
        return selectors.escalations_visible_to(user=self.user).filter(pk=case_id).exists()

    async def act(self, action: str, content: dict[str, Any]) -> None:
        case_id, version = _int(content.get("case")), _int(content.get("version"))
        if case_id is None or version is None:
            await self.send_html(rendering.notice("The action lacks a case or version.", "error"))
            return
        try:
            if action == "accept":
                await database_sync_to_async(escalation_accept)(
                    escalation_id=case_id, reviewer=self.user, version=version
                )
                html = rendering.notice("Accepted: the case is yours.", "success")
            else:
                data = rendering.decision_input(content, version=version)
                decision = await database_sync_to_async(escalation_decide)(
                    escalation_id=case_id, reviewer=self.user, data=data
                )
                html = rendering.notice(rendering.decided_message(decision), "success", case_id)
        except BatonError as error:
            html = rendering.error_notice(error)
        await self.send_html(html)

    # --- from the services (channel layer) -----------------------------------------------

    async def case_changed(self, event: dict[str, Any]) -> None:
        if self.inbox_query is not None:
            self.dirty_inbox = True
            self.inbox_fresh_after = max(self.inbox_fresh_after, event_first_seen(event))
        if self.case_id is not None and event.get("id") == self.case_id:
            self.dirty_case = True
        if event.get("change") == "received":
            self.dirty_notify = event.get("id")
        if self.board:
            self.dirty_board = True
        dirty = self.dirty_inbox or self.dirty_case or self.dirty_board
        if dirty and (self.pending is None or self.pending.done()):
            self.pending = asyncio.create_task(self._flush_coalescing())

    async def sla_alert(self, event: dict[str, Any]) -> None:
        await self.send_html(
            rendering.sla_alert(
                escalation_id=int(event["id"]),
                kind=str(event.get("kind", "")),
                detail=str(event.get("detail", "")),
            )
        )

    async def _flush_coalescing(self) -> None:
        """Render now; what arrives meanwhile waits out the window, then renders once."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.flush()
            if not (self.dirty_inbox or self.dirty_case or self.dirty_board):
                return
            await asyncio.sleep(max(0.0, DEBOUNCE_SECONDS - (loop.time() - started)))

    async def flush(self) -> None:
        parts: list[str] = []
        query = self.inbox_query
        if self.dirty_inbox and query is not None:
            self.dirty_inbox = False
            rows = await INBOX_RENDERS.get(
                self.inbox_audience,
                fresh_after=self.inbox_fresh_after,
                render=lambda: database_sync_to_async(rendering.inbox_rows)(
                    user=self.user, query=query
                ),
            )
            if rows != self.inbox_sent:  # an event elsewhere can leave this list as it was
                self.inbox_sent = rows
                parts.append(rows)
        notify_id = self.dirty_notify
        if notify_id is not None:
            self.dirty_notify = None
            parts.append(
                await database_sync_to_async(rendering.p1_notification)(
                    user=self.user, escalation_id=notify_id
                )
            )
        if self.dirty_case and self.case_id is not None:
            self.dirty_case = False
            html, self.case_version = await database_sync_to_async(rendering.case_live_parts)(
                user=self.user,
                escalation_id=self.case_id,
                shown_version=self.case_version,
                csrf_token=self.csrf_token,
            )
            parts.append(html)
        if self.dirty_board and self.board:
            self.dirty_board = False
            parts.append(await database_sync_to_async(routing_rendering.board_live)(user=self.user))
        if self.dirty_presence:
            self.dirty_presence = False
            parts.append(
                await database_sync_to_async(routing_rendering.presence_switch)(
                    user=self.user, csrf_token=self.csrf_token, oob=True
                )
            )
        html = "".join(p for p in parts if p)
        if html:
            await self.send_html(html)

    async def send_html(self, html: str) -> None:
        await self.send(text_data=html)
