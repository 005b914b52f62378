"""An ASGI process killed (SIGKILL) while consoles are connected.

Supervisors' console tabs (websockets with a session cookie and an allowed Origin) each
watch the inbox and one case. The server process is killed with no goodbye; while it is
down, half of the watched cases are decided (through the services: the events go to a
channel layer nobody listens on). A new process starts on the same port; the tabs
reconnect on the htmx ws extension's backoff, send `watch` again, and must each be
re-rendered with the current state of their case (resolved if decided in the outage).
Then one more case is decided, to show the new process's consoles are live.
"""

from __future__ import annotations

import time

from tests.bench.harness import Report, Stack, free_port, people_create, percentile, session_cookie
from tests.drills.common import (
    HEADERS,
    Console,
    Consoles,
    DrillFailed,
    case_approve,
    cases_ingest,
    seconds,
    verdict,
    wait_until,
)


def case_head(text: str) -> str:
    """The case header part of a frame ("" if the frame has none)."""
    start = text.find('id="case-head"')
    return "" if start < 0 else text[start : text.find("</header>", start)]


def shows(console: Console, status: str, *, connection: int, since: float = 0.0) -> bool:
    return any(
        frame.connection == connection
        and frame.at >= since
        and f"status-{status}" in case_head(frame.text)
        for frame in list(console.frames)
    )


def run(report: Report, *, quick: bool) -> None:
    from escalations.models import Decision

    consoles_n, cases_n = (10, 6) if quick else (50, 20)
    people = people_create(reviewers=2)
    case_ids = cases_ingest(cases_n, prefix="ak")
    decided = set(case_ids[: cases_n // 2])  # decided while the server is down
    port = free_port()

    with Stack() as stack:
        asgi = stack.asgi("ak-asgi-1", port=port)
        consoles = [
            Console(
                url=asgi.url,
                session=session_cookie(people.supervisor),
                watch={"inbox": "view=all", "case": case_ids[i % cases_n]},
            )
            for i in range(consoles_n)
        ]
        with Consoles(consoles):
            ready = wait_until(
                lambda: all(shows(c, "queued", connection=1) for c in consoles), timeout=60
            )
            asgi.kill()
            asgi.popen.wait(10)  # type: ignore[union-attr]
            killed_at = time.monotonic()
            for n, case_id in enumerate(sorted(decided)):
                case_approve(case_id, people.reviewers[n % 2])
            stack.asgi("ak-asgi-2", port=port)
            started_at = time.monotonic()

            def current(console: Console) -> bool:
                wanted = "resolved" if console.watch["case"] in decided else "queued"
                return console.connections >= 2 and shows(
                    console, wanted, connection=console.connections
                )

            resynced = wait_until(lambda: all(current(c) for c in consoles), timeout=75)
            # Live on the new process: one more decision reaches its watchers.
            live_case = case_ids[-1]
            watchers = [c for c in consoles if c.watch["case"] == live_case]
            live_at = time.monotonic()
            case_approve(live_case, people.reviewers[0])
            live = wait_until(
                lambda: all(
                    shows(c, "resolved", connection=c.connections, since=live_at) for c in watchers
                ),
                timeout=10,
            )

    stale = [c for c in consoles if not current(c)]
    gave_up = [c.gave_up for c in consoles if c.gave_up is not None]
    reconnects = [c.opened_at[1] - killed_at for c in consoles if len(c.opened_at) >= 2]
    after_start = [c.opened_at[1] - started_at for c in consoles if len(c.opened_at) >= 2]
    ok = ready and resynced and live and not stale and not gave_up
    report.table(
        "Drill: ASGI process killed (SIGKILL) with consoles connected",
        HEADERS,
        [
            [
                "asgi_kill",
                f"{consoles_n} consoles, {len(decided)} cases decided in the outage",
                f"{Decision.objects.filter(final=True).count()} decisions",
                f"{consoles_n - len(stale)} consoles resynced to the current state",
                "-",
                len(stale),
                f"p50 {seconds(percentile(after_start, 50))}, "
                f"max {seconds(max(after_start, default=None))}",
                verdict(ok),
            ]
        ],
        notes=[
            f"server down {started_at - killed_at:.1f} s (kill, decisions, a new process "
            "on the same port answering /healthz)",
            "time to recover: from the new process answering to each console's new "
            f"connection; from the kill: p50 {seconds(percentile(reconnects, 50))}, max "
            f"{seconds(max(reconnects, default=None))} (htmx ws full-jitter backoff, "
            "each failed try doubles the ceiling)",
            f"closes seen per console: max {max(len(c.errors) for c in consoles)}; "
            f"consoles that would not reconnect (close code outside 1006/1011/1012/1013): "
            f"{len(gave_up)}",
            f"after resync, a decision on case {live_case} reached its {len(watchers)} "
            f"watchers live: {'yes' if live else 'NO'}",
        ],
    )
    if not ok:
        raise DrillFailed(
            f"asgi_kill: {len(stale)} consoles not resynced, {len(gave_up)} gave up, "
            f"ready={ready} live={live}"
        )
