"""Scale-out: two ASGI processes sharing Redis; a decision made on one reaches the consoles
connected to the other.

Supervisors' consoles on both processes watch the inbox of resolved cases. Reviewers
approve cases through the console's form post, alternately on process A and process B;
each decision must show (its case's row arriving in the resolved inbox) on every console
of both processes. Latency is from sending the post to the frame's arrival, so it
includes the decision's transaction, the channel layer and each console's debounced
(150 ms) render.
"""

from __future__ import annotations

import time

from tests.bench.harness import Report, Stack, ms, people_create, percentile, session_cookie
from tests.drills.common import (
    HEADERS,
    Console,
    Consoles,
    DrillFailed,
    cases_ingest,
    http_approve,
    verdict,
    wait_until,
)

IDLE_SECONDS = 8.0


def run(report: Report, *, quick: bool) -> None:
    from escalations.models import Decision, Escalation

    per_process, decisions_n = (10, 6) if quick else (25, 12)
    people = people_create(reviewers=2)
    case_ids = cases_ingest(decisions_n, prefix="so")
    watch = {"inbox": "view=all&status=resolved", "case": None}

    with Stack() as stack:
        a, b = stack.asgi("so-asgi-a"), stack.asgi("so-asgi-b")
        consoles = {
            name: [
                Console(url=proc.url, session=session_cookie(people.supervisor), watch=watch)
                for _ in range(per_process)
            ]
            for name, proc in (("A", a), ("B", b))
        }
        everyone = consoles["A"] + consoles["B"]
        sessions = [session_cookie(user) for user in people.reviewers]
        # (made on, seen on) -> latencies in seconds
        latencies: dict[tuple[str, str], list[float]] = {}
        missed: list[tuple[int, str]] = []
        refused: list[tuple[int, int, str]] = []
        with Consoles(everyone):
            ready = wait_until(lambda: all(c.seen('id="inbox-list"') for c in everyone), timeout=60)
            # Tabs left open with nothing happening, longer than channels-redis's 5 s
            # BZPOPMIN: an idle console must stay connected.
            time.sleep(IDLE_SECONDS)
            idle_closes = [list(c.errors) for c in everyone]
            for n, case_id in enumerate(case_ids):
                made_on, proc = ("A", a) if n % 2 == 0 else ("B", b)
                version = Escalation.objects.values_list("version", flat=True).get(pk=case_id)
                sent = time.monotonic()
                status, body = http_approve(proc.url, sessions[n % 2], case_id, version)
                if status != 200:
                    refused.append((case_id, status, body))
                    continue
                needle = f"case-row-{case_id}"
                wait_until(
                    lambda needle=needle, sent=sent: all(  # type: ignore[misc]
                        c.seen(needle, since=sent) for c in everyone
                    ),
                    timeout=10,
                )
                for seen_on, group in consoles.items():
                    for console in group:
                        frame = console.seen(needle, since=sent)
                        if frame is None:
                            missed.append((case_id, seen_on))
                        else:
                            latencies.setdefault((made_on, seen_on), []).append(frame.at - sent)
                time.sleep(0.3)  # apart, so each decision is its own render

    decided = Decision.objects.filter(final=True).count()
    crossed = [lat for (made, seen), lats in latencies.items() if made != seen for lat in lats]
    expected = (decisions_n - len(refused)) * len(everyone)
    gave_up = sum(1 for c in everyone if c.gave_up is not None)
    ok = (
        ready
        and not missed
        and not gave_up
        and not any(idle_closes)
        and not refused
        and decided == decisions_n
    )
    rows = []
    for made, seen in (("A", "B"), ("B", "A"), ("A", "A"), ("B", "B")):
        lats = latencies.get((made, seen), [])
        rows.append(
            [
                f"made on {made}, seen on {seen}",
                len(lats),
                ms(percentile(lats, 50)),
                ms(percentile(lats, 95)),
                ms(max(lats, default=float("nan"))),
            ]
        )
    report.table(
        "Drill: scale-out, two ASGI processes sharing Redis",
        HEADERS,
        [
            [
                "scale_out",
                f"{decisions_n} decisions ({per_process} consoles on each of 2 processes)",
                f"{decided} decisions",
                f"{expected - len(missed)} of {expected} console updates",
                "-",
                len(missed),
                f"cross-process p95 {ms(percentile(crossed, 95))} ms",
                verdict(ok),
            ]
        ],
        notes=[
            "decisions through the console's form post, alternately on A and B; a console "
            "counts an update when its case's row arrives in its resolved inbox",
            "time to recover: not a fault drill; latency from the post to the frame",
            f"idle {IDLE_SECONDS:.0f} s before the first decision: consoles whose socket "
            f"closed meanwhile: {sum(1 for e in idle_closes if e)} of {len(everyone)} "
            f"({_first(idle_closes)}); closes over the whole drill: "
            f"{sum(len(c.errors) for c in everyone)}, gave up (no reconnect): "
            f"{sum(1 for c in everyone if c.gave_up is not None)}",
        ]
        + ([f"MISSED (case, process of the console): {missed[:20]}"] if missed else [])
        + ([f"REFUSED posts: {refused[:5]}"] if refused else []),
    )
    report.table(
        "Scale-out: decision to console latency (ms)",
        ["path", "updates", "p50", "p95", "max"],
        rows,
    )
    if not ok:
        raise DrillFailed(
            f"scale_out: {len(missed)} console updates missed, {len(refused)} posts refused"
        )


def _first(closes: list[list[str]]) -> str:
    return next((", ".join(e) for e in closes if e), "none")
