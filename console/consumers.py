"""The console websocket (DESIGN §8): one per open tab, authenticated by the session.

Services publish `case.changed` after commit; this consumer turns each event into HTML
for its own user (permissions applied by the selectors) and sends it for htmx to swap
out of band. It also takes the reviewer's actions, calling the same services as the
HTTP forms. The database is the truth: on every (re)connect the tab says what it shows
and gets it re-rendered.
"""

from __future__ import annotations

import asyncio
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

DEBOUNCE_SECONDS = 0.15  # coalesce a burst of events into one render per tab
SUPERVISE = "escalations.reassign_escalation"


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
        if self.case_id is not None and event.get("id") == self.case_id:
            self.dirty_case = True
        if event.get("change") == "received":
            self.dirty_notify = event.get("id")
        if self.board:
            self.dirty_board = True
        dirty = self.dirty_inbox or self.dirty_case or self.dirty_board
        if dirty and (self.pending is None or self.pending.done()):
            self.pending = asyncio.create_task(self._debounced_flush())

    async def sla_alert(self, event: dict[str, Any]) -> None:
        await self.send_html(
            rendering.sla_alert(
                escalation_id=int(event["id"]),
                kind=str(event.get("kind", "")),
                detail=str(event.get("detail", "")),
            )
        )

    async def _debounced_flush(self) -> None:
        await asyncio.sleep(DEBOUNCE_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        parts: list[str] = []
        if self.dirty_inbox and self.inbox_query is not None:
            self.dirty_inbox = False
            parts.append(
                await database_sync_to_async(rendering.inbox_rows)(
                    user=self.user, query=self.inbox_query
                )
            )
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
