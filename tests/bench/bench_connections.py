"""Connections: 1,000 idle consoles held by one ASGI process — the memory each costs, and
whether a decision still reaches them all within the fan-out target.

The consoles are the fan-out benchmark's team (reviewers on the Queue, supervisors on
All), 200 people with five tabs each, all on one uvicorn process, opened in batches. The
memory per connection is the growth of that process's resident set from after a warm-up
(one console connected, its list rendered, closed) to all of them connected and idle,
divided by their number. The fan-out is measured as in bench_fanout, against Redis
pub/sub to as many subscribers.
"""

from __future__ import annotations

import asyncio
import json

from tests.bench.bench_fanout import (
    Probe,
    Scene,
    asgi_env,
    console_open,
    fanout_rows,
    nofile_raise,
    scenario,
    scene_create,
    settle,
)
from tests.bench.harness import Process, Report, Stack, ms, percentile


async def warm_up(server: Process, scene: Scene) -> None:
    """Templates loaded, database connection open, caches filled: what a first console
    costs once per process, not per connection."""
    probe = Probe()
    ws = await console_open(server.url, scene.tabs[0].cookie)
    await ws.send(json.dumps({"action": "watch", "inbox": scene.tabs[0].inbox}))
    await asyncio.wait_for(ws.recv(), 30)
    await ws.close()
    await settle(probe, quiet=0.5)


def run(report: Report, *, quick: bool) -> None:
    consoles = 100 if quick else 1000
    decisions = 5 if quick else 20
    nofile = nofile_raise()
    if nofile < consoles * 2 + 100:
        raise RuntimeError(f"open files limited to {nofile}; {consoles} consoles need more")
    with Stack() as stack:
        server = stack.asgi("asgi-1", **asgi_env())
        scene = scene_create(consoles=consoles, server=server.url)
        asyncio.run(warm_up(server, scene))
        before = server.rss_bytes()
        fan, limit, extra = asyncio.run(
            scenario(servers=[server], scene=scene, consoles=consoles, decisions=decisions)
        )
    after = extra["rss_after"]
    per = (after - before) / consoles
    rows = [
        ["uvicorn RSS after warm-up", f"{before / 2**20:.1f} MiB", "", ""],
        [f"uvicorn RSS with {consoles} consoles", f"{after / 2**20:.1f} MiB", "", ""],
        ["memory per connection", f"{per / 1024:.1f} KiB", "", ""],
        *fanout_rows(f"fan-out to {consoles}", fan, limit),
        [
            "decide sent → decider's notice p50 / p95",
            f"{ms(percentile(fan.acks, 50))} / {ms(percentile(fan.acks, 95))}",
            "",
            "",
        ],
    ]
    report.table(
        f"Connections: {consoles} idle consoles on one ASGI process",
        ["figure", "Baton", "Redis pub/sub (ms)", "ratio"],
        rows,
        notes=[
            f"{scene.reviewers} reviewers (Queue) and {scene.supervisors} supervisors (All), "
            f"{consoles} tabs in all, opened {50} at a time: connected and first-rendered "
            f"in {extra['connect_seconds']:.1f} s; open-files limit {nofile}",
            f"fan-out: {fan.decisions} decisions, {len(fan.latencies)} arrivals, "
            f"{fan.missing} missing; milliseconds, as in the fan-out benchmark",
        ],
    )
