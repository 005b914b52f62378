"""What `make bench` and `make drills` share: a scratch PostgreSQL database and Redis
database, Baton's real processes (uvicorn, Celery) started and stopped around a run,
users and an agent integration, percentiles, and a report of tables that is printed and
written to var/bench/.

Nothing here runs in the test suite: pytest collects `test_*.py`, and these modules are
`bench_*.py` and `drill_*.py`, run by `python -m tests.bench` and `python -m tests.drills`.

The runner process itself is a Django process on the same database (`django_setup`), so
a benchmark can create fixtures through the services and check results with the ORM.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
PG_SERVER = os.environ.get("BATON_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
# A database of its own, created fresh for each run, so a run never touches real data.
DATABASE = os.environ.get("BATON_BENCH_DATABASE", "baton_bench_run")
# Redis database 9 by default: flushed at the start of a run, so not the one Baton uses.
REDIS_URL = os.environ.get("BATON_BENCH_REDIS", "redis://127.0.0.1:6379/9")
VAR = Path(os.environ.get("BATON_VAR_DIR", ROOT / "var")) / "bench"
PASSWORD = "bench-pass"  # scratch users in a scratch database


def database_url(name: str = DATABASE) -> str:
    return f"{PG_SERVER}/{name}"


def base_env(*, database: str = DATABASE, redis_url: str = REDIS_URL) -> dict[str, str]:
    """The environment of every process a run starts, and of the runner itself."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "REDIS_URL", "CELERY_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="console.settings.base",
        DJANGO_SECRET_KEY="baton-bench-secret-key-not-for-production",
        DATABASE_URL=database_url(database),
        REDIS_URL=redis_url,
        BATON_VAR_DIR=str(VAR / "run"),
        BATON_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        DB_CONN_MAX_AGE="60",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the database and Redis ----------------------------------------------------------------


def database_recreate(name: str = DATABASE) -> None:
    """Drop and create the scratch database, then migrate it (in a child process)."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(  # noqa: S603
        [PYTHON, "manage.py", "migrate", "--no-input", "-v0"],
        cwd=ROOT,
        env=base_env(database=name),
        check=True,
    )


def redis_flush(url: str = REDIS_URL) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def django_setup(*, database: str = DATABASE, redis_url: str = REDIS_URL) -> None:
    """Make this process a Django process on the scratch database (call once, early)."""
    import django

    os.environ.update(base_env(database=database, redis_url=redis_url))
    sys.path.insert(0, str(ROOT))
    django.setup()


# --- processes ------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    url: str = ""  # for servers
    popen: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    def start(self) -> Process:
        (VAR / "logs").mkdir(parents=True, exist_ok=True)
        self.log = VAR / "logs" / f"{self.name}.log"
        out = self.log.open("ab")
        # A session of its own, so a kill reaches the process's children too.
        self.popen = subprocess.Popen(  # noqa: S603
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the process group (SIGKILL: no goodbye, as a crash)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def stop(self, timeout: float = 10) -> None:
        if not self.alive():
            return
        self.kill(signal.SIGTERM)
        assert self.popen is not None
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.popen.wait(5)

    def rss_bytes(self) -> int:
        """Resident memory of the process (not its children), from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


def wait_http(url: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.1)


@dataclass
class Stack:
    """Baton's processes for one run; `stop()` (or the context manager) ends them all."""

    env: dict[str, str] = field(default_factory=base_env)
    processes: list[Process] = field(default_factory=list)

    def asgi(self, name: str = "asgi", *, port: int | None = None, **env: str) -> Process:
        """One uvicorn process serving `console.asgi:application`, started and answering."""
        port = port or free_port()
        proc = Process(
            name=name,
            argv=[
                PYTHON,
                "-m",
                "uvicorn",
                "console.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--timeout-graceful-shutdown",
                "3",
            ],
            env={**self.env, **env},
            url=f"http://127.0.0.1:{port}",
        ).start()
        self.processes.append(proc)
        wait_http(f"{proc.url}/healthz")
        return proc

    def worker(self, name: str = "worker", *, concurrency: int = 4, **env: str) -> Process:
        """A Celery worker like production's (threads pool), with beat's work left out."""
        proc = Process(
            name=name,
            argv=[
                PYTHON,
                "-m",
                "celery",
                "-A",
                "console",
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency}",
                "-l",
                "warning",
                "-n",
                f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
            ],
            env={**self.env, **env},
        ).start()
        self.processes.append(proc)
        return proc

    def redis(self, name: str = "redis", *, port: int | None = None) -> Process:
        """A Redis server of the run's own (for drills that restart it), no persistence."""
        port = port or free_port()
        proc = Process(
            name=name,
            argv=[
                shutil.which("redis-server") or "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            env=self.env,
            url=f"redis://127.0.0.1:{port}/0",
        ).start()
        self.processes.append(proc)
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(proc.url).ping()
                return proc
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- people and an agent --------------------------------------------------------------------


@dataclass
class People:
    token: str  # the agent integration's bearer token
    reviewers: list[Any]  # User
    supervisor: Any
    task_type: str


def people_create(*, reviewers: int = 20, capacity: int = 50, callback_url: str = "") -> People:
    """An agent integration, reviewers with every skill and round-the-clock shifts, a
    supervisor and one task type at L2 (draft review), all through the services."""
    from datetime import time as clock

    from console.roles import REVIEWER, SUPERVISOR
    from console.services import user_create
    from escalations.audit import Actor
    from escalations.models import Level
    from escalations.policy_admin import task_type_create
    from escalations.services import integration_create
    from routing.services import roster_profile_add, roster_shifts_add

    actor = Actor.system("bench")
    task_type_create(
        actor=actor, slug="bench_refund", name="Bench refunds", level=Level.DRAFT_REVIEW
    )
    _, token = integration_create(name="bench-agent", callback_url=callback_url, actor=actor)
    supervisor, _ = user_create(username="bench-sup", password=PASSWORD, role=SUPERVISOR)
    people = []
    for n in range(reviewers):
        user, _ = user_create(username=f"bench-r{n:03}", password=PASSWORD, role=REVIEWER)
        profile = roster_profile_add(actor=actor, user=user, languages=["en"], capacity=capacity)
        roster_shifts_add(
            actor=actor,
            profile_id=profile.id,
            weekdays=range(7),
            starts=clock(0, 0),
            ends=clock(23, 59),
        )
        people.append(user)
    return People(token=token, reviewers=people, supervisor=supervisor, task_type="bench_refund")


def session_cookie(user: Any) -> str:
    """A logged-in session for `user`, as the `sessionid` cookie value a browser sends."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def package(n: int, *, task_type: str = "bench_refund", prefix: str = "bench") -> dict[str, Any]:
    """A realistic handoff package (the refund fixture's shape), unique by `n`."""
    data = json.loads((ROOT / "tests/fixtures/refund_over_amount.json").read_text())
    data["external_id"] = f"{prefix}-{n}"
    data["task_type"] = task_type
    if isinstance(data.get("customer"), dict):
        data["customer"]["id"] = f"{prefix}-cust-{n % 5000}"
    return data


# --- figures and the report -----------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def machine() -> list[tuple[str, str]]:
    """What the figures were measured on, for the top of every report."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    rows = [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", f"{cpu or platform.processor()}, {os.cpu_count()} cores"),
        ("memory", memory),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
    ]
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres") as conn:
            row = conn.execute("SHOW server_version").fetchone()
            rows.append(("PostgreSQL", str(row[0]) if row else "?"))
    with contextlib.suppress(Exception):
        import redis

        rows.append(("Redis", str(redis.Redis.from_url(REDIS_URL).info("server")["redis_version"])))
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        rows.append(("Baton commit", commit))
    return rows


@dataclass
class Report:
    """Tables printed as they come and written as Markdown to var/bench/<kind>-<time>.md
    and var/bench/<kind>-latest.md."""

    kind: str  # "bench" or "drills"
    parts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.table("Machine", ["", ""], machine())

    def table(
        self,
        title: str,
        headers: Sequence[str],
        rows: Sequence[Sequence[Any]],
        notes: Sequence[str] = (),
    ) -> None:
        lines = [f"## {title}", ""]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|")
        lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
        lines += [""] + [f"- {note}" for note in notes] + ([""] if notes else [])
        text = "\n".join(lines)
        print(text, flush=True)
        self.parts.append(text)

    def write(self) -> Path:
        VAR.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        text = f"# Baton {self.kind}\n\n" + "\n".join(self.parts)
        path = VAR / f"{self.kind}-{stamp}.md"
        path.write_text(text)
        (VAR / f"{self.kind}-latest.md").write_text(text)
        print(f"\nWritten to {path}", flush=True)
        return path


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as t: …` then t[0] is the elapsed seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def main(kind: str, package: str, argv: Sequence[str]) -> int:
    """`python -m tests.bench [name …] [--quick]`: run every `bench_*.py` (or `drill_*.py`)
    module of `package`, or those named, each on a freshly created and migrated database
    and an emptied Redis database, then write the report.

    Each module has `run(report: Report, *, quick: bool) -> None`; `--quick` is a smaller
    run for checking that a module works, not for figures.
    """
    import argparse
    import importlib
    import pkgutil

    prefix = {"bench": "bench_", "drills": "drill_"}[kind]
    here = importlib.import_module(package)
    available = sorted(
        m.name.removeprefix(prefix)
        for m in pkgutil.iter_modules(here.__path__)
        if m.name.startswith(prefix)
    )
    parser = argparse.ArgumentParser(prog=f"python -m {package}")
    parser.add_argument(
        "names",
        nargs="*",
        metavar="name",
        help=f"one or more of: {', '.join(available)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, to try a module")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(available)
    if unknown:
        parser.error(
            f"no such {kind}: {', '.join(sorted(unknown))}; choose from {', '.join(available)}"
        )
    names = args.names or available

    django_setup()
    from django.db import connections

    report = Report(kind)
    failed = []
    for name in names:
        module = importlib.import_module(f"{package}.{prefix}{name}")
        print(f"\n=== {name} ===", flush=True)
        connections.close_all()
        database_recreate()
        redis_flush()
        try:
            module.run(report, quick=args.quick)
        except Exception as error:  # one failing module must not hide the rest
            import traceback

            traceback.print_exc()
            failed.append(name)
            report.table(f"{name}: FAILED", ["error"], [[repr(error)]])
    report.write()
    if failed:
        print(f"Failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
