"""`manage.py simulate_agent`: a demo AI agent that hands cases to Baton over HTTP.

It uses the real agent API (POST /api/v1/escalations with a bearer token), so what a
reviewer sees in the console is exactly what a real agent would produce. Now and then it
adds a customer's follow-up to a waiting case or withdraws one. It waits for the server
to come up and keeps going through errors, logging them, so it can run beside the server
under one process manager.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from escalations.demo_packages import demo_cancel_reason, demo_follow_up, demo_package

STARTUP_WAIT_SECONDS = 60
FOLLOW_UP_SHARE = 0.2
CANCEL_SHARE = 0.07
OPEN_CASES_KEPT = 30  # recent open cases the agent may follow up on or withdraw


class Command(BaseCommand):
    help = "Post realistic handoff packages to Baton's agent API, like a live AI agent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rate", type=float, default=6.0, help="Cases per minute.")
        parser.add_argument("--url", default=settings.BATON_PUBLIC_URL, help="Baton's base URL.")
        parser.add_argument(
            "--token", default=None, help="Integration token (default: var/demo-agent.token)."
        )
        parser.add_argument("--count", type=int, default=None, help="Stop after this many.")
        parser.add_argument("--seed", type=int, default=None, help="Replay a run.")

    def handle(self, *args: Any, **options: Any) -> None:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # we log each call ourselves
        if options["rate"] <= 0:
            raise CommandError("--rate must be above zero.")
        token = options["token"] or _read_token(settings.VAR_DIR / "demo-agent.token")
        seed = options["seed"] if options["seed"] is not None else secrets.randbelow(2**32)
        agent = SimulatedAgent(
            base_url=options["url"].rstrip("/"),
            token=token,
            rng=random.Random(seed),
            run=f"sim-{seed:x}-{int(time.time()):x}",
            log=self._log,
        )
        self._log(f"simulated agent: seed {seed}, {options['rate']:g} case(s)/min → {agent.url}")
        try:
            agent.wait_for_server()
            agent.run(rate=options["rate"], count=options["count"])
        except KeyboardInterrupt:
            self._log("simulated agent: stopped")
        finally:
            agent.close()

    def _log(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        raise CommandError(
            f"No token given and {path} does not exist: run `manage.py seed_demo` first "
            "or pass --token."
        ) from None
    if not token:
        raise CommandError(f"{path} is empty: run `manage.py seed_demo` again.")
    return token


class SimulatedAgent:
    def __init__(
        self, *, base_url: str, token: str, rng: random.Random, run: str, log: Any
    ) -> None:
        self.url = base_url
        self.rng = rng
        self.run_id = run
        self.log = log
        self.client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "baton-simulated-agent"},
            timeout=httpx.Timeout(30.0, connect=5.0),
        )
        self.open_cases: list[int] = []

    def close(self) -> None:
        self.client.close()

    def wait_for_server(self) -> None:
        """Retry with backoff until the API answers, for up to a minute."""
        deadline = time.monotonic() + STARTUP_WAIT_SECONDS
        delay = 0.5
        while True:
            try:
                response = self.client.get("/api/v1/task-types")
            except httpx.TransportError as exc:
                if time.monotonic() >= deadline:
                    raise CommandError(
                        f"Baton did not come up at {self.url} within "
                        f"{STARTUP_WAIT_SECONDS} s ({exc})."
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if response.status_code == 401:
                raise CommandError(
                    "Baton refused the token (401): run `manage.py seed_demo` to write a fresh "
                    "one, or pass --token."
                )
            if response.status_code != 200:
                self.log(f"simulated agent: server answered {response.status_code}; retrying")
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            slugs = [t["slug"] for t in response.json()]
            self.log(f"simulated agent: connected; {len(slugs)} task type(s) known")
            return

    def run(self, *, rate: float, count: int | None) -> None:
        interval = 60.0 / rate
        posted = 0
        next_at = time.monotonic()
        while count is None or posted < count:
            self.post_case(posted)
            posted += 1
            # Follow-ups and withdrawals concern cases that have waited a while, never the
            # one just handed over.
            waiting = self.open_cases[:-1]
            if waiting and self.rng.random() < FOLLOW_UP_SHARE:
                self.follow_up(self.rng.choice(waiting))
            if waiting and self.rng.random() < CANCEL_SHARE:
                case_id = self.rng.choice(waiting)
                self.open_cases.remove(case_id)
                self.cancel(case_id)
            if count is not None and posted >= count:
                break
            # Jitter the gap so cases do not arrive like a metronome.
            next_at += interval * self.rng.uniform(0.5, 1.5)
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _call(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response | None:
        try:
            response = self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            self.log(f"simulated agent: {method} {path} failed: {type(exc).__name__}: {exc}")
            return None
        if response.status_code >= 400:
            self.log(
                f"simulated agent: {method} {path} -> {response.status_code} {response.text[:500]}"
            )
            return None
        return response

    def post_case(self, n: int) -> None:
        package = demo_package(self.rng, n, run=self.run_id)
        response = self._call("POST", "/api/v1/escalations", package)
        if response is None:
            return
        case = response.json()
        triggers = ", ".join(sorted({t["code"] for t in case["triggers"]})) or "none"
        self.log(
            f"case #{case['id']} {case['task_type']}: L{case['level']} P{case['priority']} "
            f"{case['status']} (triggers: {triggers})"
        )
        if case["status"] not in {"auto_resolved", "cancelled", "resolved"}:
            self.open_cases.append(case["id"])
            del self.open_cases[:-OPEN_CASES_KEPT]

    def follow_up(self, case_id: int) -> None:
        response = self._call(
            "POST", f"/api/v1/escalations/{case_id}/messages", demo_follow_up(self.rng)
        )
        if response is not None:
            case = response.json()["escalation"]
            self.log(f"case #{case_id}: customer follow-up added (now L{case['level']} "
                     f"P{case['priority']})")  # fmt: skip
        elif case_id in self.open_cases:
            self.open_cases.remove(case_id)  # closed meanwhile (decided by a reviewer)

    def cancel(self, case_id: int) -> None:
        response = self._call(
            "POST",
            f"/api/v1/escalations/{case_id}/cancel",
            {"reason": demo_cancel_reason(self.rng)},
        )
        if response is not None:
            self.log(f"case #{case_id}: withdrawn by the agent")
