"""What the drills share: a webhook receiver on loopback, a stand-in for Celery beat, cases
made and decided through the services, the delivery check, and the verdict.

Not a drill itself (the runner only runs `drill_*.py`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.bench.harness import PYTHON, Process, Stack, free_port, package

# The drills' table: the same columns for every drill, so they read as one report.
HEADERS = [
    "drill",
    "sent",
    "stored",
    "delivered",
    "duplicates",
    "lost",
    "time to recover",
    "result",
]


class DrillFailed(AssertionError):
    """A drill found loss: the runner reports the module as failed (non-zero exit)."""


def verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def wait_until(check: Callable[[], bool], *, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


# --- the agent's webhook endpoint ---------------------------------------------------------------


@dataclass
class Received:
    webhook_id: str
    escalation_id: int | None
    at: float  # time.monotonic()
    verified: bool


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # up() again on the same port right after down()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a worker killed mid-request leaves a broken pipe: expected here


@dataclass
class Receiver:
    """The agent's webhook endpoint: a threaded HTTP server on loopback that records the
    `webhook-id` of every request, checks its Standard Webhooks signature, and answers
    `status` (2xx unless a drill says otherwise) after `delay` seconds.

    `down()` closes the listening socket (the worker gets connection refused), `up()`
    listens again on the same port.
    """

    secret: str = ""
    port: int = field(default_factory=free_port)
    status: int = 204
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    refused: int = 0  # requests answered with a non-2xx status
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/baton"

    def up(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = receiver.status
                # Recorded on arrival, before the answer: an agent that acted on a webhook
                # whose 2xx never reached Baton (a killed worker) gets it again.
                if 200 <= status < 300:
                    receiver.record(body, dict(self.headers.items()))
                else:
                    with receiver._lock:
                        receiver.refused += 1
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = _QuietServer(("127.0.0.1", self.port), Handler)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True, name="receiver").start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def record(self, body: bytes, headers: dict[str, str]) -> None:
        from standardwebhooks import Webhook

        verified = False
        try:
            Webhook(self.secret).verify(body, headers)
            verified = True
        except Exception:  # any failure to verify is counted, never raised at Baton
            verified = False
        try:
            escalation_id = json.loads(body).get("escalation_id")
        except ValueError:
            escalation_id = None
        item = Received(
            webhook_id=headers.get("webhook-id", headers.get("Webhook-Id", "")),
            escalation_id=escalation_id,
            at=time.monotonic(),
            verified=verified,
        )
        with self._lock:
            self.received.append(item)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)


# --- beat ------------------------------------------------------------------------------------


def sweeper(stack: Stack, *, interval: float = 2.0, name: str = "sweeper", **env: str) -> Process:
    """A stand-in for Celery beat: a process that sends `escalations.sweep_deliveries` to
    the broker every `interval` seconds, as beat does every 30 s in production (a shorter
    period so a drill takes seconds, not minutes); a worker runs it like any other task."""
    proc = Process(
        name=name,
        argv=[PYTHON, "-m", "tests.drills.sweeper", str(interval)],
        env={**stack.env, **env},
    ).start()
    stack.processes.append(proc)
    return proc


# --- cases and decisions through the services -----------------------------------------------


def integration_secret() -> str:
    from escalations.models import Integration

    return str(Integration.objects.get(name="bench-agent").webhook_secret)


def cases_ingest(count: int, *, prefix: str) -> list[int]:
    """`count` cases handed over by the bench agent, through the ingest service."""
    from escalations.models import Integration
    from escalations.schemas import HandoffIn
    from escalations.services import escalation_ingest

    integration = Integration.objects.get(name="bench-agent")
    ids = []
    for n in range(count):
        result = escalation_ingest(
            integration=integration,
            package=HandoffIn.model_validate(package(n, prefix=prefix)),
        )
        ids.append(result.escalation.pk)
    return ids


def case_approve(case_id: int, reviewer: Any) -> None:
    """The reviewer approves the case at its current version (the service a form calls)."""
    from escalations.decisions import DecisionInput, escalation_decide
    from escalations.models import Escalation

    version = Escalation.objects.values_list("version", flat=True).get(pk=case_id)
    escalation_decide(
        escalation_id=case_id,
        reviewer=reviewer,
        data=DecisionInput(verb="approve", version=version),
    )


@dataclass
class DeliveryCheck:
    """Decisions against what the receiver saw: every final decision's outbox row must
    reach the receiver at least once; more than once is at-least-once, counted."""

    decisions: int
    rows: int
    rows_delivered: int
    received: int
    unique_received: int
    duplicates: int
    lost: list[int]  # escalation ids whose decision never reached the receiver
    unverified: int
    max_attempts: int

    @property
    def ok(self) -> bool:
        return not self.lost and self.unverified == 0 and self.rows == self.decisions


def delivery_check(receiver: Receiver) -> DeliveryCheck:
    from escalations.models import Decision, WebhookDelivery

    decided = set(Decision.objects.filter(final=True).values_list("escalation_id", flat=True))
    rows = list(WebhookDelivery.objects.values_list("escalation_id", "webhook_id", "state"))
    seen = receiver.snapshot()
    seen_ids = {item.webhook_id for item in seen}
    lost = sorted(
        {escalation for escalation, webhook_id, _ in rows if webhook_id not in seen_ids}
        | (decided - {escalation for escalation, _, _ in rows})
    )
    from django.db.models import Max

    return DeliveryCheck(
        decisions=len(decided),
        rows=len(rows),
        rows_delivered=sum(1 for *_, state in rows if state == WebhookDelivery.State.DELIVERED),
        received=len(seen),
        unique_received=len(seen_ids),
        duplicates=len(seen) - len(seen_ids),
        lost=lost,
        unverified=sum(1 for item in seen if not item.verified),
        max_attempts=WebhookDelivery.objects.aggregate(m=Max("attempts"))["m"] or 0,
    )


def all_delivered(receiver: Receiver) -> Callable[[], bool]:
    def check() -> bool:
        from escalations.models import WebhookDelivery

        wanted = set(WebhookDelivery.objects.values_list("webhook_id", flat=True))
        return bool(wanted) and wanted <= {item.webhook_id for item in receiver.snapshot()}

    return check


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


# --- a reviewer's browser: HTTP posts and console sockets ------------------------------------

# Django accepts an unmasked 32-character secret in both the cookie and the header.
CSRF = "drillsdrillsdrillsdrillsdrills32"


def http_approve(base_url: str, session: str, case_id: int, version: int) -> tuple[int, str]:
    """Approve through the console's form post, as htmx sends it (200 done, 409 refused)."""
    import httpx

    response = httpx.post(
        f"{base_url}/cases/{case_id}/decide",
        data={"verb": "approve", "version": str(version)},
        cookies={"sessionid": session, "csrftoken": CSRF},
        headers={"X-CSRFToken": CSRF, "HX-Request": "true", "Referer": base_url + "/"},
        timeout=15,
    )
    return response.status_code, response.text[:300]


@dataclass
class Frame:
    at: float  # time.monotonic()
    text: str
    connection: int  # which (re)connection of the console it came on


# The close codes after which the htmx ws extension reconnects (hx-ws-2.js `onclose`):
# abnormal closure, internal error, service restart, try again later. After any other
# (1000 normal, 4xxx from the consumer) the tab stays disconnected until reloaded.
RECONNECT_CODES = (1006, 1011, 1012, 1013)


@dataclass
class Console:
    """One console tab's websocket: connects with the session cookie and an allowed
    Origin, sends `watch`, keeps every frame, and when the socket closes reconnects with
    the htmx ws extension's backoff (full jitter, 2^n seconds up to 64) and watches again,
    but only after the close codes that make the extension reconnect."""

    url: str  # http://host:port of the ASGI process (or a list to rotate through)
    session: str
    watch: dict[str, Any]
    frames: list[Frame] = field(default_factory=list)
    connections: int = 0
    closed_at: list[float] = field(default_factory=list)
    opened_at: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    gave_up: int | None = None  # the close code after which a browser would not reconnect
    stopping: bool = False
    max_delay: float = 64.0

    async def run(self) -> None:
        import asyncio
        import random

        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        ws_url = self.url.replace("http://", "ws://") + "/ws/console/"
        retries = 0
        while not self.stopping:
            try:
                async with connect(
                    ws_url,
                    origin=self.url,  # type: ignore[arg-type]
                    additional_headers={"Cookie": f"sessionid={self.session}"},
                    open_timeout=5,
                ) as ws:
                    self.connections += 1
                    self.opened_at.append(time.monotonic())
                    retries = 0
                    await ws.send(json.dumps({"action": "watch", **self.watch}))
                    while not self.stopping:
                        try:
                            text = await asyncio.wait_for(ws.recv(), 0.5)
                        except TimeoutError:
                            continue
                        self.frames.append(Frame(time.monotonic(), str(text), self.connections))
            except Exception as error:  # closed, refused, reset: reconnect as a browser does
                code = 1006  # what a browser reports for a refused or reset connection
                if isinstance(error, ConnectionClosed) and error.rcvd is not None:
                    code = error.rcvd.code
                self.errors.append(f"{type(error).__name__} {code}")
                if code not in RECONNECT_CODES:
                    self.gave_up = code
                    return
            if self.stopping:
                return
            self.closed_at.append(time.monotonic())
            delay = min(self.max_delay, 2.0**retries) * random.random()
            retries += 1
            await asyncio.sleep(delay)

    def seen(self, needle: str, *, since: float = 0.0) -> Frame | None:
        for frame in list(self.frames):
            if frame.at >= since and needle in frame.text:
                return frame
        return None


class Consoles:
    """Consoles run on an event loop in a thread of the runner, so the drill's main thread
    stays synchronous (ORM, processes) and looks at their frames."""

    def __init__(self, consoles: list[Console]) -> None:
        import asyncio

        self.consoles = consoles
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, daemon=True, name="consoles")

    def _main(self) -> None:
        import asyncio

        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(asyncio.gather(*(c.run() for c in self.consoles)))

    def __enter__(self) -> Consoles:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for console in self.consoles:
            console.stopping = True
        self.thread.join(15)

    def all_seen(self, needle: str, *, since: float = 0.0) -> bool:
        return all(c.seen(needle, since=since) is not None for c in self.consoles)
