"""Webhook delivery: from a decision's commit to the agent's receiver answering 2xx, on
loopback, with real Celery workers on the Redis broker, against a bare signed POST to the
same receiver.

Decisions are made through the decision service in this process (the form post and the
socket call the same service; the path under test starts at commit) at a steady rate on
cases accepted beforehand. The commit time is the Decision row's `created_at`, taken
inside the transaction just before it commits, so the figure is, if anything, long by the
rest of that transaction. The receiver (uvicorn in a thread of this process, same clock)
verifies each Standard Webhooks signature with the `standardwebhooks` package and records
when it answers. The limit is a new HTTP client per request posting the same signed body
to the same receiver, as the worker's `_post` does: what one delivery cannot go below.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.bench.harness import (
    Report,
    Stack,
    free_port,
    ms,
    package,
    people_create,
    percentile,
)


@dataclass
class Hit:
    at: float  # time.time() when the receiver answers
    webhook_id: str
    verified: bool


@dataclass
class Receiver:
    """A tiny ASGI app that verifies the signature and answers 204 (401 if it fails)."""

    secret: str = ""
    hits: list[Hit] = field(default_factory=list)
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    url: str = ""

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            Webhook(self.secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        self.hits.append(Hit(time.time(), headers.get("webhook-id", ""), verified))
        await send({"type": "http.response.start", "status": 204 if verified else 401})
        await send({"type": "http.response.body", "body": b""})

    def start(self) -> Receiver:
        port = free_port()
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{port}/hooks/baton"
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(5)


def bare_posts(receiver: Receiver, *, body: bytes, count: int, rate: float) -> list[float]:
    """Signed POSTs straight to the receiver at `rate` per second, each with a new client
    (as the worker does); seconds from the request's start to the receiver's answer."""
    from escalations.delivery import webhook_signature

    latencies = []
    for n in range(count):
        webhook_id = f"msg_bare_{n}"
        started_wall = time.time()
        stamp = int(started_wall)
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": webhook_signature(
                secret=receiver.secret, webhook_id=webhook_id, timestamp=stamp, body=body
            ),
            "content-type": "application/json",
        }
        with httpx.Client(timeout=10) as client:
            client.post(receiver.url, content=body, headers=headers).raise_for_status()
        answered = next(h.at for h in reversed(receiver.hits) if h.webhook_id == webhook_id)
        latencies.append(answered - started_wall)
        time.sleep(max(0.0, 1 / rate - (time.time() - started_wall)))
    return latencies


def cases_accepted(people: Any, count: int) -> list[tuple[int, Any, int]]:
    """`count` cases, each accepted by a reviewer in turn: (id, reviewer, version)."""
    from escalations.decisions import escalation_accept
    from escalations.models import Integration
    from escalations.schemas import HandoffIn
    from escalations.services import escalation_ingest

    integration = Integration.objects.get(name="bench-agent")
    accepted = []
    for n in range(count):
        case = escalation_ingest(
            integration=integration,
            package=HandoffIn.model_validate(package(n, prefix="hook")),
        ).escalation
        reviewer = people.reviewers[n % len(people.reviewers)]
        case = escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)
        accepted.append((case.pk, reviewer, case.version))
    return accepted


def run(report: Report, *, quick: bool) -> None:
    from escalations.decisions import DecisionInput, escalation_decide
    from escalations.models import Decision, Integration, WebhookDelivery

    decisions = 40 if quick else 300
    rate = 10.0  # decisions per second on a fixed schedule, below what the runner can commit
    workers, concurrency = 2, 4
    receiver = Receiver().start()
    try:
        people = people_create(
            reviewers=max(2, decisions // 40), capacity=50, callback_url=receiver.url
        )
        receiver.secret = Integration.objects.get(name="bench-agent").webhook_secret
        cases = cases_accepted(people, decisions)
        with Stack() as stack:
            for n in range(workers):
                stack.worker(f"worker-{n + 1}", concurrency=concurrency)
            time.sleep(3)  # the workers connect to the broker
            start = time.perf_counter()
            behind = 0
            for n, (case_id, reviewer, version) in enumerate(cases):
                due = start + n / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                else:
                    behind += 1
                escalation_decide(
                    escalation_id=case_id,
                    reviewer=reviewer,
                    data=DecisionInput(verb="approve", version=version),
                )
            elapsed = time.perf_counter() - start
            ids = dict(
                WebhookDelivery.objects.filter(decision__isnull=False).values_list(
                    "webhook_id", "decision_id"
                )
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if len({h.webhook_id for h in receiver.hits} & set(ids)) >= len(ids):
                    break
                time.sleep(0.2)
            time.sleep(1)  # late duplicates, if any
        committed = dict(Decision.objects.values_list("pk", "created_at"))
        hits = [h for h in receiver.hits if h.webhook_id in ids]
        counts = Counter(h.webhook_id for h in hits)
        first: dict[str, float] = {}
        for hit in hits:
            if hit.verified:
                first.setdefault(hit.webhook_id, hit.at)
        latencies = [at - committed[ids[wid]].timestamp() for wid, at in first.items()]
        body = WebhookDelivery.objects.first()
        assert body is not None
        from escalations.delivery import delivery_body

        bare = bare_posts(receiver, body=delivery_body(body), count=min(decisions, 200), rate=rate)
    finally:
        receiver.stop()
    rows = []
    for p in (50, 95, 99):
        value, limit = percentile(latencies, p), percentile(bare, p)
        rows.append([f"p{p}", ms(value), ms(limit), f"{value / limit:.1f}x"])
    duplicates = sum(c - 1 for c in counts.values())
    report.table(
        f"Webhook delivery: decision commit → receiver's 2xx, {decisions} decisions at "
        f"{rate:.0f}/s",
        ["figure (ms)", "Baton", "bare POST", "ratio"],
        rows,
        notes=[
            f"{len(committed)} decisions, {len(ids)} outbox rows, {len(first)} delivered and "
            f"verified, {len(ids) - len(first)} missing, {duplicates} duplicate deliveries "
            f"(at-least-once), {sum(1 for h in hits if not h.verified)} failed signatures",
            f"{workers} Celery workers (threads pool, concurrency {concurrency}), Redis broker; "
            f"receiver: uvicorn in a thread of the runner, Standard Webhooks verification; "
            f"decisions through the service in the runner, {behind} of them behind schedule, "
            f"{len(cases) / elapsed:.1f}/s achieved",
            "bare POST: a new httpx client per request, the same signed body, request start → "
            "the receiver's answer",
        ],
    )
