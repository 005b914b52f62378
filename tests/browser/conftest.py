"""Browser tests: a live ASGI server in this process and Debian's Chromium driven by Playwright.

The server is uvicorn running `console.asgi.application` in a thread with its own event
loop, one per test, against the test database. Tests must be
`django_db(transaction=True)`, so what the test writes is committed and the server's
threads see it. The in-memory channel layer lives in this process, so events the test
publishes (an ingest, say) reach the server's consumers; with REDIS_URL they cross Redis.

Chromium is never downloaded: the `browser` marker makes a test skip locally, and fail
under CI=true, when there is no `chromium` on PATH (see tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import gc
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from channels.layers import channel_layers
from django.contrib.auth.models import User
from django.db import connections
from playwright.sync_api import Browser, Page, WebSocketRoute, expect, sync_playwright

from escalations.models import Escalation
from tests.people import (  # noqa: F401  (fixtures)
    agent,
    make_case,
    review_type,
    reviewer,
    reviewer2,
    supervisor,
)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1366, "height": 768}
T = TypeVar("T")
PASSWORD = "pw"  # tests.people.make_user's
# Generous for a loaded CI machine; a live update normally lands in well under a second.
expect.set_options(timeout=10_000)


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread


def _serve(app: str, sock: socket.socket) -> LiveServer:
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        # Stop waits this long for open sockets; tabs are closed before it anyway.
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    # Handing uvicorn a socket that is already bound leaves no window for a port clash.
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="asgi-live-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live ASGI server did not start")
        time.sleep(0.01)
    host, port = sock.getsockname()[:2]
    return LiveServer(url=f"http://{host}:{port}", server=server, thread=thread)


@pytest.fixture
def live_asgi(transactional_db: None) -> Iterator[LiveServer]:
    """`console.asgi:application` on 127.0.0.1 and a free port, for one test.

    It depends on `transactional_db`, so it stops before the database is flushed and
    no request of a closing tab writes into the next test's data.
    """
    # A fresh channel layer for the server's fresh event loop: channels-redis binds its
    # locks to the loop that first waits on them.
    channel_layers.backends.clear()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    live = _serve("console.asgi:application", sock)
    try:
        yield live
    finally:
        live.server.should_exit = True
        live.thread.join(timeout=10)
        sock.close()
        assert not live.thread.is_alive(), "the live ASGI server did not stop"
        collect_garbage()  # the stopped server's tasks


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One Chromium per test module; every user gets a fresh context (cookies, storage).

    The sync Playwright API leaves its event loop marked running on this thread, so
    Django would refuse the test's own ORM calls as "async unsafe" (pytest-django's
    advice for Playwright is this variable; the consumers' discipline is tested without
    it in tests/console/), and `async_to_sync` refuses to publish events: see `ingest`.
    Module scope, not session, so the asyncio tests that follow never meet that loop.
    """
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as pw:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def results_dir(pytestconfig: pytest.Config) -> Path:
    """test-results/ at the top of the tree (gitignored): screenshots to look at."""
    path = pytestconfig.rootpath / "test-results"
    path.mkdir(exist_ok=True)
    return path


@dataclass
class Tabs:
    """The pages a test opened, with the JavaScript errors they raised."""

    pages: list[Page] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


_failed = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """Remember whether the test failed, for `sign_in` to take screenshots.

    The garbage collector pauses while pytest renders a failure (see `collect_garbage`):
    otherwise the failure could be lost in an INTERNALERROR.
    """
    gc.disable()
    try:
        report: pytest.TestReport = yield
    finally:
        gc.enable()
    if report.when == "call":
        item.stash[_failed] = report.failed
    return report


@pytest.fixture
def sign_in(
    request: pytest.FixtureRequest,
    live_asgi: LiveServer,
    chromium: Browser,
    results_dir: Path,
) -> Iterator[Callable[..., Page]]:
    """`sign_in(user, path="/", prepare=None)`: a fresh browser context, logged in through
    /login/, on `path` with the live socket open.

    Every tab is closed before the server stops; a failed test leaves a screenshot of
    each in test-results/, and an uncaught JavaScript error in any tab fails the test.
    """
    tabs = Tabs()

    def open_as(
        user: User, path: str = "/", prepare: Callable[[Page], object] | None = None
    ) -> Page:
        context = chromium.new_context(viewport=VIEWPORT, base_url=live_asgi.url)
        context.set_default_timeout(10_000)
        context.add_init_script(COUNT_LIVE_MESSAGES)
        page = context.new_page()
        if prepare is not None:  # say, routes to set up before the first request
            prepare(page)
        page.on("pageerror", lambda error: tabs.errors.append(f"{user.username}: {error}"))
        tabs.pages.append(page)
        page.goto(f"/login/?next={path}")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"^(?!.*/login/)"))
        wait_live(page)
        return page

    yield open_as

    if request.node.stash.get(_failed, False):
        for n, page in enumerate(tabs.pages):
            with contextlib.suppress(Exception):
                page.screenshot(path=results_dir / f"failed-{request.node.name}-{n}.png")
    for page in tabs.pages:
        page.context.close()
    assert not tabs.errors, f"JavaScript errors: {tabs.errors}"


def collect_garbage() -> None:
    """Collect garbage now, at a safe point.

    A consumer task that failed after its tab went away (ClientDisconnected) is logged,
    traceback and all, when the collector frees it. If that happens in the middle of an
    `ast.parse` on this thread (pytest rewriting an import or rendering a failure), the
    nested parse that places the traceback's carets breaks CPython < 3.11.8: "SystemError:
    AST constructor recursion depth mismatch" (gh-106905), and pytest ends in an
    INTERNALERROR though every test passed.
    """
    gc.collect()


def in_thread(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run `function` in a thread of its own, with its own database connection.

    Services publish live events with `async_to_sync` when their transaction commits,
    which cannot run on this thread while Playwright's loop is marked running on it.
    """

    def run() -> T:
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=30)


@pytest.fixture
def ingest(make_case: Callable[..., Escalation]) -> Callable[..., Escalation]:
    """`ingest(**package_overrides)`: a case arrives from the agent, events and all."""
    return lambda **overrides: in_thread(make_case, **overrides)


# Counts the messages since the socket last opened, once htmx has swapped and settled them.
COUNT_LIVE_MESSAGES = """
window.__liveMessages = 0;
document.addEventListener("htmx:wsOpen", () => { window.__liveMessages = 0; });
document.addEventListener("htmx:wsAfterMessage", () => { window.__liveMessages += 1; });
"""


def route_console_socket(handler: Callable[[WebSocketRoute], object]) -> Callable[[Page], None]:
    """A `prepare` for `sign_in` that hands the tab's console socket to `handler`, which
    relays it to the server (`connect_to_server()`) and may hold or drop frames."""

    def prepare(page: Page) -> None:
        page.route_web_socket(re.compile(r"/ws/console/$"), handler)

    return prepare


def wait_live(page: Page) -> None:
    """Wait until the tab's socket is open and the page has been re-rendered from the
    database once (the answer to its `watch`): live updates reach it from here on, and
    no late resync will replace what the test does next."""
    expect(page.locator("#live-state")).to_have_class(re.compile(r"\bok\b"))
    page.wait_for_function("window.__liveMessages > 0")
