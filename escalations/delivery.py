"""The decision back to the agent (DESIGN §7): one payload, an outbox, signed webhooks.

A final decision writes a `WebhookDelivery` row in its own transaction (the outbox), so a
decision that commits is never lost and one that rolls back is never sent. Celery drives
the row: each attempt first *claims* it in a short transaction (a lease: `next_attempt_at`
moves a minute ahead), then posts, then records the outcome in a second transaction. A
worker killed between the two leaves a lease that simply expires; the periodic sweep
re-drives everything that is due, so a lost broker message or a dead worker loses nothing.
The row, not the broker, is the truth: a task that runs early or twice finds nothing to
claim and does nothing.

Requests are signed per the Standard Webhooks scheme (https://www.standardwebhooks.com):
`webhook-id` (the same on every retry, so the agent can drop duplicates),
`webhook-timestamp`, and `webhook-signature` = "v1," + base64 HMAC-SHA256 over
`id.timestamp.body` with the integration's base64-decoded secret.

The agent can also ask instead of listening: `GET /api/v1/escalations/{id}/decision?wait=N`
long-polls through `decision_wait`, which answers with the same payload.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from console.events import case_group, publish_case_changed
from escalations import selectors
from escalations.audit import Actor, audit_record, audited_transaction, canonical_json
from escalations.decisions import display_name
from escalations.errors import Conflict
from escalations.models import (
    Decision,
    DeliveryAttempt,
    Escalation,
    Integration,
    Status,
    WebhookDelivery,
)

logger = logging.getLogger(__name__)

EVENT_DECIDED = "escalation.decided"
EVENT_PENDING = "escalation.pending"

# A claimed attempt owns the row this long. It must outlast the request timeout with room
# to record the outcome; after it a sweep treats the worker as dead and tries again.
LEASE = timedelta(seconds=60)
REQUEST_TIMEOUT = httpx.Timeout(10.0)
# Wait after the n-th failed attempt (the first is immediate): about three and a half
# days in all, so an agent that is down over a weekend still gets its decisions.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
USER_AGENT = "Baton-Webhooks/1"
# What is kept of a failing endpoint's answer, for the briefing.
ERROR_BODY_BYTES = 512
# The long-poll re-reads the database at least this often: the channel layer may drop
# the wake-up (at-most-once, or another process's in-memory layer).
RECHECK_SECONDS = 2.0
MAX_WAIT_SECONDS = 30

_WEBHOOKS = Actor.system("webhooks")


# --- The payload ------------------------------------------------------------------------------


def decision_payload(*, decision: Decision) -> dict[str, Any]:
    """The one JSON shape of a decision for the agent: the webhook body and the API's answer.

    JSON-native (dates as the API renders them), so the stored outbox payload, the bytes
    that are signed and what `GET …/decision` returns are the same document.
    """
    escalation = decision.escalation
    payload = {
        "type": EVENT_DECIDED,
        "escalation_id": escalation.pk,
        "external_id": escalation.external_id,
        "status": escalation.status,
        "decision": {
            "verb": decision.verb,
            "instruction": decision.agent_instruction,
            "action": decision.action or None,
            "draft_response": decision.draft_response,
            "response_text": decision.response_text,
            "reason": decision.reason,
            "note": decision.note,
            "diff": decision.diff or {},
            "decided_by": display_name(decision.reviewer),
            "decided_at": decision.created_at,
        },
    }
    result: dict[str, Any] = json.loads(canonical_json(payload))
    return result


def _pending_payload(escalation: Escalation) -> dict[str, Any]:
    return {
        "type": EVENT_PENDING,
        "escalation_id": escalation.pk,
        "external_id": escalation.external_id,
        "status": escalation.status,
        "decision": None,
    }


def _final_decision(escalation: Escalation) -> Decision | None:
    decision = (
        Decision.objects.select_related("reviewer")
        .filter(escalation=escalation, final=True)
        .first()
    )
    if decision is not None:
        decision.escalation = escalation
    return decision


def escalation_decision_payload(*, escalation: Escalation) -> dict[str, Any] | None:
    """The case's final decision as the agent receives it, or None while there is none."""
    decision = _final_decision(escalation)
    return decision_payload(decision=decision) if decision is not None else None


def escalation_delivery_summary(*, escalation: Escalation) -> dict[str, Any]:
    """How many webhook deliveries the case has and the state of the latest."""
    states = list(
        escalation.deliveries.order_by("-created_at", "-id").values_list("state", flat=True)
    )
    return {"count": len(states), "last_state": states[0] if states else None}


# --- The outbox -------------------------------------------------------------------------------


def _new_webhook_id() -> str:
    # URL-safe base64 never contains ".", the separator of the signed content.
    return "msg_" + secrets.token_urlsafe(18)


def delivery_enqueue_for_decision(*, decision: Decision) -> WebhookDelivery | None:
    """Write the outbox row for a final decision; runs inside the decision's transaction.

    No callback URL (neither the case's nor the integration's default): no row, the agent
    polls. An endpoint that answered 410 before gets a row all the same, created disabled,
    so the decision is never silently dropped and the briefing shows why it was not sent.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("delivery_enqueue_for_decision must run in the decision's transaction")
    escalation = decision.escalation
    integration = escalation.integration
    url = escalation.callback_url or integration.default_callback_url
    if not url:
        return None
    disabled = url in (integration.disabled_callback_urls or [])
    now = timezone.now()
    delivery = WebhookDelivery.objects.create(
        escalation=escalation,
        decision=decision,
        webhook_id=_new_webhook_id(),
        event_type=EVENT_DECIDED,
        url=url,
        payload=decision_payload(decision=decision),
        state=WebhookDelivery.State.DISABLED if disabled else WebhookDelivery.State.PENDING,
        next_attempt_at=None if disabled else now,
        last_error="The endpoint answered 410 Gone earlier; not sent." if disabled else "",
    )
    if disabled:
        _audit_outcome(delivery, verb="delivery.disabled", reason="endpoint disabled earlier")
    else:
        from escalations.tasks import deliver_webhook

        # robust: a broker that is down must not turn a committed decision into an error
        # for the reviewer; the sweep sends the row when the broker is back.
        delivery_id = delivery.pk
        transaction.on_commit(lambda: deliver_webhook.delay(delivery_id), robust=True)
    return delivery


def _audit_outcome(delivery: WebhookDelivery, *, verb: str, **data: Any) -> None:
    audit_record(
        actor=_WEBHOOKS,
        verb=verb,
        escalation=delivery.escalation,
        obj=delivery,
        data={
            "webhook_id": delivery.webhook_id,
            "url": delivery.url,
            "attempts": delivery.attempts,
            "last_status_code": delivery.last_status_code,
            "last_error": delivery.last_error,
            **data,
        },
    )


# --- One attempt: claim, post, record -----------------------------------------------------------


@dataclass(frozen=True)
class DeliveryClaim:
    """What one attempt needs, read while the row was claimed (the lease is held)."""

    delivery_id: int
    escalation_id: int
    number: int
    url: str
    webhook_id: str
    body: bytes
    secret: str


@dataclass(frozen=True)
class DeliveryOutcome:
    state: str
    attempt: int
    status_code: int | None
    error: str
    retry_in: float | None  # seconds until the next attempt is due, if one is


@dataclass(frozen=True)
class _Response:
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str


def delivery_body(delivery: WebhookDelivery) -> bytes:
    """The request body: canonical JSON of the stored payload, the same bytes every time."""
    return canonical_json(delivery.payload).encode("utf-8")


def webhook_signature(*, secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks v1: base64 HMAC-SHA256 over `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def delivery_claim(*, delivery_id: int) -> DeliveryClaim | None:
    """Take the lease on a due, pending delivery; None if it is not due or someone has it.

    Short on purpose: nothing slow happens while the row is locked.
    """
    now = timezone.now()
    with audited_transaction():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("escalation__integration")
            .filter(pk=delivery_id, state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now)
            .first()
        )
        if delivery is None:
            return None
        integration = delivery.escalation.integration
        if delivery.url in (integration.disabled_callback_urls or []):
            # The endpoint answered 410 to another delivery since this one was written.
            delivery.state = WebhookDelivery.State.DISABLED
            delivery.next_attempt_at = None
            delivery.last_error = "The endpoint answered 410 Gone to another delivery; not sent."
            delivery.save(update_fields=["state", "next_attempt_at", "last_error"])
            _audit_outcome(delivery, verb="delivery.disabled", reason="endpoint disabled")
            publish_case_changed(
                escalation_id=delivery.escalation_id, change="delivery", inboxes=False
            )
            return None
        delivery.attempts += 1
        delivery.next_attempt_at = now + LEASE
        delivery.save(update_fields=["attempts", "next_attempt_at"])
        return DeliveryClaim(
            delivery_id=delivery.pk,
            escalation_id=delivery.escalation_id,
            number=delivery.attempts,
            url=delivery.url,
            webhook_id=delivery.webhook_id,
            body=delivery_body(delivery),
            secret=integration.webhook_secret,
        )


def _post(claim: DeliveryClaim) -> _Response:
    started_at = timezone.now()
    clock = time.monotonic()
    status_code: int | None = None
    error = ""
    try:
        if not claim.secret:
            raise ValueError("the integration has no webhook secret; nothing is sent unsigned")
        allowed = settings.BATON_WEBHOOK_ALLOWED_HOSTS
        host = httpx.URL(claim.url).host
        if allowed and host not in allowed:
            raise ValueError(f"callback host {host!r} is not in BATON_WEBHOOK_ALLOWED_HOSTS")
        timestamp = int(started_at.timestamp())
        headers = {
            "webhook-id": claim.webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": webhook_signature(
                secret=claim.secret,
                webhook_id=claim.webhook_id,
                timestamp=timestamp,
                body=claim.body,
            ),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        # Redirects are not followed: a signed request goes only where the agent said.
        with (
            httpx.Client(timeout=REQUEST_TIMEOUT, follow_redirects=False) as client,
            client.stream("POST", claim.url, content=claim.body, headers=headers) as response,
        ):
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}: " + _read_some(response)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return _Response(
        started_at=started_at,
        duration_ms=(time.monotonic() - clock) * 1000,
        status_code=status_code,
        error=error,
    )


def _read_some(response: httpx.Response) -> str:
    chunk = b""
    for part in response.iter_bytes():
        chunk += part
        if len(chunk) >= ERROR_BODY_BYTES:
            break
    return chunk[:ERROR_BODY_BYTES].decode("utf-8", errors="replace").strip()


def _retry_delay(attempt: int) -> timedelta | None:
    return RETRY_SCHEDULE[attempt - 1] if attempt <= len(RETRY_SCHEDULE) else None


def _disable_url(integration_id: int, url: str) -> None:
    integration = Integration.objects.select_for_update().get(pk=integration_id)
    if url not in integration.disabled_callback_urls:
        integration.disabled_callback_urls = [*integration.disabled_callback_urls, url]
        integration.save(update_fields=["disabled_callback_urls"])


def _record(claim: DeliveryClaim, response: _Response) -> DeliveryOutcome:
    """Log the attempt and move the row on, unless a later attempt has taken it over."""
    State = WebhookDelivery.State
    now = timezone.now()
    with audited_transaction():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("escalation")
            .get(pk=claim.delivery_id)
        )
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=claim.number,
            started_at=response.started_at,
            duration_ms=round(response.duration_ms, 1),
            status_code=response.status_code,
            error=response.error,
        )
        # A slow attempt whose lease ran out may finish after a newer one: it still counts
        # if it delivered, but it does not reschedule what the newer attempt owns.
        pending = delivery.state == State.PENDING
        latest = pending and delivery.attempts == claim.number
        code = response.status_code
        retry_in: float | None = None
        outcome: str | None = None
        if pending and code is not None and 200 <= code < 300:
            delivery.state = State.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            outcome = "delivery.delivered"
        elif pending and code == 410:
            delivery.state = State.DISABLED
            delivery.next_attempt_at = None
            _disable_url(delivery.escalation.integration_id, delivery.url)
            outcome = "delivery.disabled"
        elif latest:
            delay = _retry_delay(claim.number)
            if delay is None:
                delivery.state = State.FAILED
                delivery.next_attempt_at = None
                outcome = "delivery.failed"
            else:
                delivery.next_attempt_at = now + delay
                retry_in = delay.total_seconds()
        if pending:
            delivery.last_status_code = code
            delivery.last_error = response.error
        delivery.save(
            update_fields=[
                "state",
                "next_attempt_at",
                "delivered_at",
                "last_status_code",
                "last_error",
            ]
        )
        if outcome is not None:
            _audit_outcome(delivery, verb=outcome)
        publish_case_changed(escalation_id=delivery.escalation_id, change="delivery", inboxes=False)
    return DeliveryOutcome(
        state=delivery.state,
        attempt=claim.number,
        status_code=code,
        error=response.error,
        retry_in=retry_in,
    )


def delivery_attempt(*, delivery_id: int) -> DeliveryOutcome | None:
    """Try to deliver once if the row is due; None when there was nothing to claim.

    Idempotent and safe to run concurrently: only the caller that claims the row posts.
    """
    claim = delivery_claim(delivery_id=delivery_id)
    if claim is None:
        return None
    outcome = _record(claim, _post(claim))
    logger.info(
        "webhook %s attempt %s to %s: %s",
        claim.webhook_id,
        claim.number,
        claim.url,
        outcome.status_code or outcome.error,
    )
    return outcome


def delivery_sweep(*, limit: int = 500) -> int:
    """Hand every pending delivery that is due (never sent, retry due, lease expired) to a
    worker; returns how many. Runs on Celery beat."""
    from escalations.tasks import deliver_webhook

    due = list(
        WebhookDelivery.objects.filter(
            state=WebhookDelivery.State.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    for delivery_id in due:
        deliver_webhook.delay(delivery_id)
    return len(due)


# --- Long-poll ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionAnswer:
    decided: bool
    payload: dict[str, Any]


def decision_answer(*, integration: Integration, escalation_id: int) -> DecisionAnswer:
    """The decision now: decided, or pending; Conflict when none will ever come."""
    escalation = selectors.escalation_for_integration(
        integration=integration, escalation_id=escalation_id
    )
    decision = _final_decision(escalation)
    if decision is not None:
        return DecisionAnswer(decided=True, payload=decision_payload(decision=decision))
    awaiting_review = (
        escalation.status == Status.AUTO_RESOLVED
        and escalation.sampled_for_review
        and escalation.reviewed_at is None
    )
    if not escalation.is_open and not awaiting_review:
        raise Conflict(
            f"Escalation {escalation.pk} is {escalation.get_status_display().lower()}; "
            "no decision will come."
        )
    return DecisionAnswer(decided=False, payload=_pending_payload(escalation))


def _decision_answer_released(*, integration: Integration, escalation_id: int) -> DecisionAnswer:
    """One read for a waiter, which then gives its database connection back: a waiter is
    idle between reads, and hundreds of them must not hold hundreds of connections."""
    try:
        return decision_answer(integration=integration, escalation_id=escalation_id)
    finally:
        if not connection.in_atomic_block:
            connection.close()


async def decision_wait(
    *, integration: Integration, escalation_id: int, wait: float
) -> DecisionAnswer:
    """Answer as soon as the final decision exists, or pending after `wait` seconds.

    Woken by the case's "case.changed" events on the channel layer, and re-reads the
    database every few seconds regardless: the layer may drop a message, the database
    never lies.
    """
    read = sync_to_async(_decision_answer_released)
    answer = await read(integration=integration, escalation_id=escalation_id)
    wait = min(max(wait, 0.0), MAX_WAIT_SECONDS)
    if answer.decided or wait <= 0:
        return answer

    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    layer = get_channel_layer()
    group = case_group(escalation_id)
    channel: str | None = None
    if layer is not None:
        try:
            channel = await layer.new_channel()
            await layer.group_add(group, channel)
        except Exception:  # a broken layer degrades to polling, never to an error
            logger.warning("long-poll: channel layer unavailable, polling", exc_info=True)
            channel = None
    try:
        while True:
            # Subscribed first, then read: a decision between the two cannot be missed.
            answer = await read(integration=integration, escalation_id=escalation_id)
            remaining = deadline - loop.time()
            if answer.decided or remaining <= 0:
                return answer
            timeout = min(RECHECK_SECONDS, remaining)
            if layer is None or channel is None:
                await asyncio.sleep(timeout)
                continue
            # Any message on the case wakes us; the database says whether it was the one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(layer.receive(channel), timeout)
    finally:
        if layer is not None and channel is not None:
            try:
                await layer.group_discard(group, channel)
            except Exception:
                logger.warning("long-poll: could not leave %s", group, exc_info=True)
