"""Decision fan-out: from a reviewer's decision to its update arriving at every connected
console, against a raw Redis publish → subscriber round trip with as many subscribers.

The scene is a team at work: reviewers each with a console tab on the Queue, supervisors
with two tabs each on All cases, spread over the ASGI processes. A reviewer (on a socket
of their own, as the browser's `ws-send` forms do) accepts a queued case, then escalates
it to a supervisor: a decision that puts the case back in the queue, so it shows in every
console's list (Queue tabs gain the row, All tabs see it turn `queued`). The clock starts
when the decider's `decide` message is sent (the click) and stops, per console, when the
message carrying that row as `queued` arrives (found by the row's element id). The event
crosses Redis: decide runs in one ASGI process, the channel layer carries the event to all.

The limit is 200 (or N) Redis pub/sub subscribers in this same process receiving one
PUBLISH of a payload as large as a console's update: the transport and client-side cost
Baton cannot go below, measured in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.bench.harness import (
    PASSWORD,
    REDIS_URL,
    Process,
    Report,
    Stack,
    ms,
    package,
    people_create,
    percentile,
    session_cookie,
)

SUPERVISOR_TABS = 2  # a supervisor keeps the All view open in two tabs
CONNECT_BATCH = 50  # consoles opened at once: a login wave, not a SYN flood
SETTLE_SECONDS = 0.25  # no message for this long: every console has caught up


def asgi_env() -> dict[str, str]:
    """The ASGI processes' environment, with one fix applied from outside: redis-py 8 reads
    with a 5 s socket timeout by default, exactly channels-redis's BZPOPMIN block time, so
    a process whose consoles get no event for 5 s has its receiving consumer crash with
    "Timeout reading from" and that console drop. A longer socket timeout on the channel
    layer's URL avoids it (the Celery broker keeps the plain URL: kombu refuses the option).
    Production needs the same in console/settings (CHANNEL_LAYERS hosts)."""
    joiner = "&" if "?" in REDIS_URL else "?"
    return {"REDIS_URL": f"{REDIS_URL}{joiner}socket_timeout=30", "CELERY_BROKER_URL": REDIS_URL}


def nofile_raise() -> int:
    """Lift this process's open-file limit to the hard limit; uvicorn children inherit it.
    Each console is a socket in the runner and one in the server."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the scene: people, cases, who watches what -------------------------------------------


@dataclass
class Tab:
    cookie: str
    inbox: str  # the inbox query the page sends in its `watch` message


@dataclass
class Scene:
    token: str
    tabs: list[Tab]
    decider_cookie: str
    cycle: list[int]  # cases the decider accepts and escalates, in turn
    versions: dict[int, int]
    reviewers: int
    supervisors: int


def scene_create(
    *, consoles: int, server: str, cases: int = 30, cycle: int = 5, people: int = 200
) -> Scene:
    """At most `people` people (more consoles are their further tabs): three quarters are
    reviewers with a tab on the Queue, the rest supervisors with two tabs on All. Cases
    arrive before anyone is online, so they wait queued (nobody is offered them) and every
    list shows them."""
    from console.roles import SUPERVISOR
    from console.services import user_create
    from escalations.models import Escalation

    seats = min(consoles, people)
    supervisor_tabs = max(SUPERVISOR_TABS, seats // 4 // SUPERVISOR_TABS * SUPERVISOR_TABS)
    supervisors = supervisor_tabs // SUPERVISOR_TABS
    reviewers = seats - supervisor_tabs
    people = people_create(reviewers=reviewers + 1)  # the last one decides
    bosses = [people.supervisor] + [
        user_create(username=f"bench-sup{n:03}", password=PASSWORD, role=SUPERVISOR)[0]
        for n in range(1, supervisors)
    ]
    tabs = [Tab(session_cookie(user), "view=queue") for user in people.reviewers[:reviewers]]
    for boss in bosses:
        cookie = session_cookie(boss)
        tabs += [Tab(cookie, "view=all") for _ in range(SUPERVISOR_TABS)]
    ids = []
    with httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {people.token}"}, timeout=30
    ) as client:
        for n in range(cases):
            response = client.post("/api/v1/escalations", json=package(n, prefix="fanout"))
            response.raise_for_status()
            ids.append(int(response.json()["id"]))
    versions = dict(Escalation.objects.filter(pk__in=ids).values_list("pk", "version"))
    statuses = set(Escalation.objects.filter(pk__in=ids).values_list("status", flat=True))
    if statuses != {"queued"}:
        raise RuntimeError(f"the bench cases should wait queued, not {statuses}")
    return Scene(
        token=people.token,
        tabs=(tabs * (consoles // len(tabs) + 1))[:consoles],
        decider_cookie=session_cookie(people.reviewers[-1]),
        cycle=ids[:cycle],
        versions=versions,
        reviewers=reviewers,
        supervisors=supervisors,
    )


# --- consoles ------------------------------------------------------------------------------


@dataclass
class Probe:
    """What the consoles are waiting for: the row of one case in a given state."""

    pattern: re.Pattern[str] | None = None
    arrivals: dict[int, float] = field(default_factory=dict)
    arrivals_wall: dict[int, float] = field(default_factory=dict)  # time.time(), vs the DB
    sizes: list[int] = field(default_factory=list)
    expected: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    last_message: float = 0.0
    messages: int = 0

    def arm(self, case_id: int, status: str, expected: int) -> None:
        self.pattern = re.compile(rf'id="case-row-{case_id}" class="row p\d status-{status}\b')
        self.arrivals, self.arrivals_wall, self.sizes = {}, {}, []
        self.expected = expected
        self.done = asyncio.Event()


async def console_open(url: str, cookie: str) -> ClientConnection:
    """A console tab's socket: the session cookie, and the page's own origin.
    No permessage-deflate, so the runner spends its CPU receiving rather than inflating
    (browsers do negotiate it; the server would then also compress per connection)."""
    return await connect(
        url.replace("http://", "ws://") + "/ws/console/",
        additional_headers={"Cookie": f"sessionid={cookie}"},
        origin=url,  # type: ignore[arg-type]
        compression=None,
        max_size=None,
        open_timeout=60,
        ping_interval=None,  # idle consoles stay idle: the page's own ping is every 30 s
    )


async def _read(ws: ClientConnection, index: int, probe: Probe) -> None:
    with contextlib.suppress(Exception):
        async for message in ws:
            now = time.perf_counter()
            text = message if isinstance(message, str) else message.decode()
            probe.last_message, probe.messages = now, probe.messages + 1
            pattern = probe.pattern
            if pattern is not None and index not in probe.arrivals and pattern.search(text):
                probe.arrivals[index] = now
                probe.arrivals_wall[index] = time.time()
                probe.sizes.append(len(text))
                if len(probe.arrivals) >= probe.expected:
                    probe.done.set()


@dataclass
class Consoles:
    sockets: list[ClientConnection]
    readers: list[asyncio.Task[None]]
    probe: Probe

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


async def consoles_open(servers: Sequence[str], tabs: Sequence[Tab], probe: Probe) -> Consoles:
    """Open every tab, round robin over the servers, in batches; each sends the `watch`
    message the inbox page sends on connect (static/console/console.js)."""
    sockets: list[ClientConnection] = []
    for start in range(0, len(tabs), CONNECT_BATCH):
        batch = tabs[start : start + CONNECT_BATCH]
        sockets += await asyncio.gather(
            *(
                console_open(servers[(start + i) % len(servers)], tab.cookie)
                for i, tab in enumerate(batch)
            )
        )
    readers = [asyncio.create_task(_read(ws, i, probe)) for i, ws in enumerate(sockets)]
    for ws, tab in zip(sockets, tabs, strict=True):
        await ws.send(
            json.dumps(
                {"action": "watch", "inbox": tab.inbox, "case": None, "board": False}
                | {"version": None}
            )
        )
    return Consoles(sockets, readers, probe)


async def settle(probe: Probe, *, quiet: float = SETTLE_SECONDS, limit: float = 20) -> None:
    """Wait until no console has received anything for `quiet` seconds."""
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        await asyncio.sleep(quiet / 2)
        if time.perf_counter() - probe.last_message >= quiet:
            return


class Decider:
    """The reviewer who decides, on a socket of their own (the forms' `ws-send`)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def act(self, message: dict[str, Any], expect: str) -> None:
        await self.ws.send(json.dumps(message))
        while True:
            text = str(await asyncio.wait_for(self.ws.recv(), 30))
            if expect in text:
                return
            if "toast-error" in text:
                raise RuntimeError(f"{message['action']} failed: {text[:400]}")


@dataclass
class FanOut:
    latencies: list[float]  # seconds, one per console per decision
    from_commit: list[float]  # seconds from the decision row's insert to each arrival
    acks: list[float]  # decide sent → the decider's own "Escalated" notice
    missing: int  # consoles that never got the update within the timeout
    sizes: list[int]
    decisions: int


async def fanout_measure(
    *, scene: Scene, decider: Decider, probe: Probe, consoles: int, decisions: int
) -> FanOut:
    from asgiref.sync import sync_to_async

    from escalations.models import Decision

    def inserted_at(case_id: int) -> float:
        from django.db import connection

        try:
            decision = Decision.objects.filter(escalation_id=case_id).latest("pk")
            return decision.created_at.timestamp()
        finally:
            # This runs on asgiref's thread; the runner's next module drops the database,
            # which would leave a connection kept here dead for that module.
            connection.close()

    latencies: list[float] = []
    from_commit: list[float] = []
    acks: list[float] = []
    sizes: list[int] = []
    missing = 0
    for n in range(decisions):
        case_id = scene.cycle[n % len(scene.cycle)]
        version = scene.versions[case_id]
        await decider.act({"action": "accept", "case": case_id, "version": version}, "Accepted")
        version += 1
        await settle(probe)
        probe.arm(case_id, "queued", consoles)
        sent = time.perf_counter()
        await decider.act(
            {
                "action": "decide",
                "case": case_id,
                "version": version,
                "verb": "escalate",
                "escalate_to_supervisor": "1",
                "note": "Bench: over to a supervisor.",
            },
            "Escalated",
        )
        acks.append(time.perf_counter() - sent)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(probe.done.wait(), 10)
        scene.versions[case_id] = version + 1
        latencies += [at - sent for at in probe.arrivals.values()]
        committed = await sync_to_async(inserted_at)(case_id)
        from_commit += [at - committed for at in probe.arrivals_wall.values()]
        sizes += probe.sizes
        missing += consoles - len(probe.arrivals)
        probe.pattern = None
    return FanOut(latencies, from_commit, acks, missing, sizes, decisions)


# --- the limit: Redis pub/sub ----------------------------------------------------------------


async def redis_fanout(*, subscribers: int, payload_size: int, rounds: int) -> list[float]:
    """One PUBLISH of `payload_size` bytes to `subscribers` connections subscribed to one
    channel, all in this process; seconds from publish to each subscriber's receipt."""
    import redis.asyncio as aioredis

    channel = f"bench-fanout-{time.time_ns()}"  # pub/sub ignores db numbers: be unique
    payload = b"x" * payload_size
    clients = [aioredis.Redis.from_url(REDIS_URL) for _ in range(subscribers)]
    subs = [client.pubsub() for client in clients]
    for start in range(0, subscribers, CONNECT_BATCH):
        await asyncio.gather(*(s.subscribe(channel) for s in subs[start : start + CONNECT_BATCH]))
    got: list[float] = []
    arrived = asyncio.Event()
    count = 0

    async def listen(sub: Any) -> None:
        nonlocal count
        async for message in sub.listen():
            if message["type"] == "message":
                got.append(time.perf_counter())
                count += 1
                if count >= subscribers:
                    arrived.set()

    listeners = [asyncio.create_task(listen(s)) for s in subs]
    publisher = aioredis.Redis.from_url(REDIS_URL)
    latencies: list[float] = []
    try:
        await asyncio.sleep(0.2)
        for _ in range(rounds):
            got.clear()
            count = 0
            arrived = asyncio.Event()
            sent = time.perf_counter()
            await publisher.publish(channel, payload)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 10)
            latencies += [at - sent for at in got]
            await asyncio.sleep(0.05)
    finally:
        for task in listeners:
            task.cancel()
        for s in subs:
            with contextlib.suppress(Exception):
                await s.aclose()
        for client in [*clients, publisher]:
            with contextlib.suppress(Exception):
                await client.aclose()
    return latencies


# --- the report ---------------------------------------------------------------------------


def ratio(value: float, limit: float) -> str:
    return f"{value / limit:.1f}x" if limit > 0 else "-"


def fanout_rows(label: str, fan: FanOut, limit: list[float]) -> list[list[str]]:
    rows = []
    for p in (50, 95, 99):
        value, bare = percentile(fan.latencies, p), percentile(limit, p)
        rows.append([f"{label} p{p}", ms(value), ms(bare), ratio(value, bare)])
    return rows


async def scenario(
    *,
    servers: list[Process],
    scene: Scene,
    consoles: int,
    decisions: int,
) -> tuple[FanOut, list[float], dict[str, float]]:
    """Open the consoles, measure decisions, then the Redis limit at the same size."""
    urls = [server.url for server in servers]
    extra: dict[str, float] = {}
    probe = Probe()
    started = time.perf_counter()
    opened = await consoles_open(urls, scene.tabs[:consoles], probe)
    decider = Decider(await console_open(urls[0], scene.decider_cookie))
    try:
        await settle(probe, quiet=1.0, limit=120)
        extra["connect_seconds"] = time.perf_counter() - started
        extra["rss_after"] = sum(s.rss_bytes() for s in servers)
        fan = await fanout_measure(
            scene=scene, decider=decider, probe=probe, consoles=consoles, decisions=decisions
        )
    finally:
        await decider.ws.close()
        await opened.close()
    size = int(percentile(fan.sizes, 50)) if fan.sizes else 10_000
    limit = await redis_fanout(subscribers=consoles, payload_size=size, rounds=max(decisions, 20))
    return fan, limit, extra


def run(report: Report, *, quick: bool) -> None:
    consoles = 20 if quick else 200
    decisions = 5 if quick else 40
    processes = 2
    nofile_raise()
    with Stack() as stack:
        servers = [stack.asgi(f"asgi-{n + 1}", **asgi_env()) for n in range(processes)]
        scene = scene_create(consoles=consoles, server=servers[0].url)
        fan, limit, extra = asyncio.run(
            scenario(servers=servers, scene=scene, consoles=consoles, decisions=decisions)
        )
    rows = fanout_rows(f"{consoles} consoles", fan, limit)
    rows.append(
        [
            "decision stored → console p50 / p95 / p99",
            " / ".join(ms(percentile(fan.from_commit, p)) for p in (50, 95, 99)),
            "",
            "",
        ]
    )
    rows.append(
        [
            "decide sent → decider's notice p50 / p95",
            f"{ms(percentile(fan.acks, 50))} / {ms(percentile(fan.acks, 95))}",
            "",
            "",
        ]
    )
    report.table(
        f"Decision fan-out: {consoles} consoles on {processes} ASGI processes",
        ["figure (ms)", "Baton", "Redis pub/sub", "ratio"],
        rows,
        notes=[
            f"{fan.decisions} decisions x {consoles} consoles = {len(fan.latencies)} arrivals, "
            f"{fan.missing} missing; {scene.reviewers} reviewers on the Queue (one tab each), "
            f"{scene.supervisors} supervisors on All ({SUPERVISOR_TABS} tabs each)",
            "Baton: a reviewer's socket `decide` (escalate to a supervisor) sent → the message "
            "carrying the case's row as `queued` received by each console (decide runs in "
            "ASGI process 1; the event crosses Redis to both processes)",
            f"Redis pub/sub: one PUBLISH of {int(percentile(fan.sizes, 50))} bytes (a console "
            f"update's median size) → each of {consoles} subscribers in this process",
            "decision stored → console: from the Decision row's created_at (set inside the "
            "transaction, so a little before its commit) to each arrival, both on this "
            "machine's clock: the fan-out alone, without the click's round trip and the "
            "decision's own transaction",
            f"connect + first render of all consoles: {extra['connect_seconds']:.1f} s",
        ],
    )
