"""Redis restarted mid-flow (broker and channel layer at once).

A Redis of the drill's own (no persistence, so whatever it held is gone after the
restart: queued Celery messages, channel-layer groups) serves one ASGI process, one
Celery worker and the beat stand-in. An agent thread posts cases over HTTP while a
reviewer thread approves them through the console's form posts; Redis is killed (SIGKILL)
part-way and started again on the same port a few seconds later. A supervisor's console
watches the inbox throughout and reconnects as the htmx ws extension would.

Checks: every case posted is stored once (posts that failed got an error the agent can
act on, and the agent's retry with the same `external_id` is idempotent), every approve
that answered 200 is a decision, every decision reaches the receiver (the outbox and the
sweep make up for the lost broker messages), and the console is live again after the
restart.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.bench.harness import Report, Stack, package, people_create, session_cookie
from tests.drills.common import (
    HEADERS,
    Console,
    Consoles,
    DrillFailed,
    Receiver,
    all_delivered,
    delivery_check,
    http_approve,
    integration_secret,
    seconds,
    sweeper,
    verdict,
    wait_until,
)


@dataclass
class Agent:
    """Posts `count` packages, one every `pace` seconds; then, once told Redis is back,
    retries every post that failed with the same package (same `external_id`)."""

    base_url: str
    token: str
    count: int
    pace: float
    first: dict[str, tuple[int | None, str]] = field(default_factory=dict)  # first answers
    failures: list[tuple[str, int | None, str]] = field(default_factory=list)
    retries: dict[str, int | None] = field(default_factory=dict)  # the retry's status
    replays: list[int | None] = field(default_factory=list)  # successful posts sent again
    redis_back: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def post(self, n: int) -> tuple[int | None, str]:
        import httpx

        try:
            response = httpx.post(
                f"{self.base_url}/api/v1/escalations",
                json=package(n, prefix="rr"),
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=15,
            )
        except httpx.HTTPError as error:
            return None, f"{type(error).__name__}: {error}"
        return response.status_code, response.text[:200]

    def run(self) -> None:
        try:
            for n in range(self.count):
                status, body = self.post(n)
                self.first[f"rr-{n}"] = (status, body)
                if status not in (200, 201):
                    self.failures.append((f"rr-{n}", status, body))
                time.sleep(self.pace)
            self.redis_back.wait(60)
            for external_id, _, _ in self.failures:
                n = int(external_id.removeprefix("rr-"))
                for _ in range(10):  # an agent's own retry loop
                    status, _ = self.post(n)
                    if status in (200, 201):
                        break
                    time.sleep(0.5)
                self.retries[external_id] = status
            ok = [k for k, (s, _) in self.first.items() if s in (200, 201)][:5]
            self.replays = [self.post(int(k.removeprefix("rr-")))[0] for k in ok]
        finally:
            self.done.set()


@dataclass
class Reviewer:
    """Approves every open case of the drill through the console's form post."""

    base_url: str
    session: str
    approved: list[int] = field(default_factory=list)  # answered 200
    refused: list[tuple[int, int, str]] = field(default_factory=list)  # other answers
    errors: list[tuple[int, str]] = field(default_factory=list)  # no answer
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        import httpx
        from django.db import connections

        from escalations.models import OPEN_STATUSES, Escalation

        try:
            while not self.stop.is_set():
                open_cases = list(
                    Escalation.objects.filter(status__in=OPEN_STATUSES).values_list("pk", "version")
                )
                for case_id, version in open_cases:
                    try:
                        status, body = http_approve(self.base_url, self.session, case_id, version)
                    except httpx.HTTPError as error:
                        self.errors.append((case_id, repr(error)))
                        continue
                    if status == 200:
                        self.approved.append(case_id)
                    else:
                        self.refused.append((case_id, status, body))
                time.sleep(0.1)
        finally:
            connections.close_all()


def _kind(status: int | None, body: str) -> str:
    if status is None:
        return f"no answer ({body.split(':')[0]})"
    clear = body.lstrip().startswith("{") and '"message"' in body
    return f"HTTP {status} " + ("JSON error" if clear else f"not JSON: {body[:60]!r}")


def run(report: Report, *, quick: bool) -> None:
    from django.utils import timezone

    from escalations.models import Decision, Escalation, Status, WebhookDelivery

    count, pace, outage = (40, 0.15, 3.0) if quick else (150, 0.06, 5.0)
    receiver = Receiver().up()
    people = people_create(reviewers=2, callback_url=receiver.url)
    receiver.secret = integration_secret()

    with Stack() as stack:
        redis = stack.redis("rr-redis")
        env = {"REDIS_URL": redis.url}
        asgi = stack.asgi("rr-asgi", **env)
        stack.worker("rr-worker", concurrency=4, **env)
        sweeper(stack, interval=2.0, name="rr-sweeper", **env)
        console = Console(
            url=asgi.url,
            session=session_cookie(people.supervisor),
            watch={"inbox": "view=all", "case": None},
        )
        agent = Agent(base_url=asgi.url, token=people.token, count=count, pace=pace)
        reviewer = Reviewer(base_url=asgi.url, session=session_cookie(people.reviewers[0]))
        threads = [
            threading.Thread(target=agent.run, name="agent"),
            threading.Thread(target=reviewer.run, name="reviewer"),
        ]
        with Consoles([console]):
            wait_until(lambda: console.seen('id="inbox-list"') is not None, timeout=10)
            for thread in threads:
                thread.start()
            wait_until(lambda: len(agent.first) >= count // 4, timeout=60, interval=0.02)
            down_wall = timezone.now()
            redis.kill()
            redis.popen.wait(10)  # type: ignore[union-attr]
            posted_before = len(agent.first)
            time.sleep(outage)
            redis.start()
            wait_until(lambda: _ping(redis.url), timeout=10, interval=0.05)
            up_at = time.monotonic()
            up_wall = timezone.now()
            agent.redis_back.set()
            agent.done.wait(120)
            # The console comes back on its own backoff (up to 64 s after many failures),
            # is re-rendered, and is live again: a case posted now shows in it.
            back = wait_until(
                lambda: (
                    console.connections >= 2
                    and any(
                        f.connection == console.connections and 'id="inbox-list"' in f.text
                        for f in console.frames
                    )
                ),
                timeout=70,
            )
            console_back = console.opened_at[-1] - up_at if back else None
            probe_at = time.monotonic()
            status, _ = agent.post(count)  # the probe: one more case, after the restart
            probe = Escalation.objects.filter(external_id=f"rr-{count}").first()
            live = probe is not None and wait_until(
                lambda: console.seen(f"case-row-{probe.pk}", since=probe_at) is not None,
                timeout=10,
            )
            decided = wait_until(
                lambda: not Escalation.objects.exclude(status=Status.RESOLVED).exists(),
                timeout=60,
            )
            reviewer.stop.set()
            threads[1].join(20)
            delivered = wait_until(all_delivered(receiver), timeout=60, interval=0.25)
            # The probe came later on purpose; recovery is the rest of the flow's.
            probe_id = probe.pk if probe is not None else None
            seen = [item for item in receiver.snapshot() if item.escalation_id != probe_id]
            recovered = max(item.at for item in seen) - up_at if delivered and seen else None

    receiver.down()
    check = delivery_check(receiver)
    stored = set(Escalation.objects.values_list("external_id", flat=True))
    wanted = {f"rr-{n}" for n in range(count + 1)}  # with the probe
    missing_cases = sorted(wanted - stored)
    approved_without_decision = sorted(
        set(reviewer.approved)
        - set(Decision.objects.filter(final=True).values_list("escalation_id", flat=True))
    )
    retry_failed = {k: v for k, v in agent.retries.items() if v not in (200, 201)}
    replays_ok = all(status == 200 for status in agent.replays)
    # Their `deliver_webhook.delay()` failed at commit (robust on_commit): only the sweep
    # could send them.
    in_outage = WebhookDelivery.objects.filter(
        created_at__gte=down_wall, created_at__lte=up_wall
    ).count()
    kinds: dict[str, int] = {}
    for _, status, body in agent.failures:
        kinds[_kind(status, body)] = kinds.get(_kind(status, body), 0) + 1
    unclear = sum(n for kind, n in kinds.items() if "not JSON" in kind)
    ok = (
        not missing_cases
        and len(stored) == count + 1
        and not approved_without_decision
        and not retry_failed
        and replays_ok
        and decided
        and delivered
        and check.ok
        and back
        and live
    )
    notes: list[Any] = [
        f"Redis killed after {posted_before} of {count} posts, down {outage:.0f} s, then "
        f"started empty on the same port; {in_outage} decisions were made while it was "
        "down (their broker message never sent: delivered by the sweep), and any queued "
        "at the kill were lost with it",
        f"posts that failed at first: {len(agent.failures)} ({kinds or 'none'}); the agent's "
        f"retries with the same external_id: {len(agent.retries) - len(retry_failed)} of "
        f"{len(agent.retries)} stored; 5 successful posts sent again answered "
        f"{agent.replays} (200 = replay, nothing new)",
        f"approves through the console: {len(reviewer.approved)} answered 200, "
        f"{len(reviewer.refused)} refused (e.g. a stale version), {len(reviewer.errors)} "
        f"without an answer; approved with no decision stored: {approved_without_decision}",
        f"supervisor's console: {console.connections} connections, closes seen "
        f"{_counts(console.errors)}; reconnected and re-rendered {seconds(console_back)} "
        f"after Redis was back (the htmx ws extension's backoff: up to 2^n s after n "
        f"failures); a case posted then reached it live: {'yes' if live else 'NO'}",
        "time to recover: from Redis answering again to the last webhook the receiver got "
        "(the probe case aside)",
        f"signatures verified: {check.received - check.unverified} of {check.received}",
    ]
    if unclear:
        notes.append(f"{unclear} failed posts got an error that is not the API's JSON shape")
    if not (back and live):
        notes.append("FAIL: the console did not come back live after the restart")
    if missing_cases:
        notes.append(f"LOST cases: {missing_cases[:20]}")
    if check.lost:
        notes.append(f"LOST deliveries: cases {check.lost[:20]}")
    report.table(
        "Drill: Redis restarted mid-flow",
        HEADERS,
        [
            [
                "redis_restart",
                f"{count + 1} cases, {len(reviewer.approved)} approves",
                f"{len(stored)} cases, {check.decisions} decisions, {check.rows} rows",
                f"{check.unique_received} (rows delivered: {check.rows_delivered})",
                check.duplicates,
                len(missing_cases) + len(check.lost) + len(approved_without_decision),
                seconds(recovered),
                verdict(ok),
            ]
        ],
        notes=notes,
    )
    if not ok:
        raise DrillFailed(
            f"redis_restart: {len(missing_cases)} cases lost, {len(check.lost)} deliveries "
            f"lost, retries failing {retry_failed}, replays {agent.replays}, "
            f"decided={decided} delivered={delivered} console back={back} live={live}"
        )


def _ping(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url).ping())
    except redis.RedisError:
        return False


def _counts(items: list[str]) -> str:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in counts.items()) or "none"
