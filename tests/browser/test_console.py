"""The console in Chromium: the flows that need JavaScript (live updates, the keyboard).

Each test signs its users in through /login/ in contexts of their own, against a live
ASGI server (tests/browser/conftest.py). Screenshots land in test-results/ to look at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Locator, Page, WebSocketRoute, expect

from escalations.models import Decision, Escalation, Integration, Status, TaskType
from escalations.schemas import HandoffIn
from escalations.services import escalation_ingest
from tests.browser.conftest import in_thread, route_console_socket, wait_live
from tests.conftest import load_fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    # WhiteNoise hands Django a sync file iterator for every static file under ASGI.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous"),
]

SignIn = Callable[..., Page]
Ingest = Callable[..., Escalation]


def status_of(page: Page) -> Locator:
    return page.locator("#case-head .status")


def test_the_supervisors_inbox_follows_decisions_and_arrivals_live(
    sign_in: SignIn, supervisor: User, reviewer: User, ingest: Ingest
) -> None:
    case = ingest()
    board = sign_in(supervisor, "/?view=all")
    row = board.locator(f"#case-row-{case.pk}")
    expect(row).to_have_class(re.compile(r"\bstatus-queued\b"))

    desk = sign_in(reviewer, f"/cases/{case.pk}/")
    desk.keyboard.press("c")
    expect(row).to_have_class(re.compile(r"\bstatus-in_review\b"))
    expect(row.locator("td").last).to_have_text("Ann")

    expect(desk.locator("#form-accept")).to_have_count(0)  # the panel moved on: approve
    desk.keyboard.press("a")
    expect(row).to_have_count(0)  # resolved: out of the default, open view

    arrived = ingest(summary="Fresh from the agent: a refund for a broken kettle.")
    expect(board.locator(f"#case-row-{arrived.pk}")).to_contain_text("broken kettle")
    assert board.url.endswith("/?view=all")  # no reload, no navigation


def test_a_case_worked_with_the_keyboard_alone(
    sign_in: SignIn, reviewer: User, ingest: Ingest, results_dir: Path
) -> None:
    first = ingest()
    second = ingest(draft_response="Hello,\nI have refunded 80 EUR to your card.")
    desk = sign_in(reviewer, "/")
    keys = desk.keyboard

    keys.press("g")
    keys.press("q")
    desk.wait_for_url("**/?view=queue")
    wait_live(desk)
    rows = desk.locator("#inbox-rows tr.row")
    expect(rows).to_have_count(2)
    keys.press("k")  # the first row, whatever a live update did to the selection
    expect(rows.nth(0)).to_have_attribute("aria-selected", "true")
    keys.press("j")
    expect(rows.nth(1)).to_have_attribute("aria-selected", "true")
    keys.press("k")
    expect(rows.nth(0)).to_have_attribute("aria-selected", "true")
    keys.press("j")
    keys.press("Enter")
    desk.wait_for_url(f"**/cases/{second.pk}/")
    wait_live(desk)

    keys.press("c")
    expect(status_of(desk)).to_have_text("In review")
    expect(desk.locator("#form-accept")).to_have_count(0)
    keys.press("e")
    draft = desk.locator("#edit-draft")
    expect(draft).to_be_focused()
    keys.type("\nKind regards, Ann")  # the caret starts at the end of the draft
    keys.press("Control+Enter")
    expect(status_of(desk)).to_have_text("Resolved")
    expect(desk.locator("#toasts")).to_contain_text("Approved with your edits")
    desk.screenshot(path=results_dir / "briefing-edited.png")

    decision = Decision.objects.get(escalation=second)
    assert decision.verb == "edit" and decision.reviewer == reviewer
    assert decision.draft_response == (
        "Hello,\nI have refunded 80 EUR to your card.\nKind regards, Ann"
    )
    assert "+Kind regards, Ann" in decision.diff["draft"]
    second.refresh_from_db()
    assert second.status == Status.RESOLVED

    keys.press("n")  # the next case: the reviewer's own inbox
    desk.wait_for_url("**/?view=mine")
    wait_live(desk)
    keys.press("g")
    keys.press("q")
    desk.wait_for_url("**/?view=queue")
    wait_live(desk)
    expect(rows).to_have_count(1)
    keys.press("k")
    keys.press("Enter")
    desk.wait_for_url(f"**/cases/{first.pk}/")
    keys.press("u")
    desk.wait_for_url("**/?view=queue")


def test_the_selection_survives_live_updates(
    sign_in: SignIn, reviewer: User, ingest: Ingest
) -> None:
    _, second = ingest(), ingest()
    desk = sign_in(reviewer, "/?view=queue")
    rows = desk.locator("#inbox-rows tr.row")
    expect(rows.nth(0)).to_have_attribute("aria-selected", "true", timeout=1000)  # after the resync
    desk.keyboard.press("j")
    expect(rows.nth(1)).to_have_attribute("aria-selected", "true")
    ingest(summary="Another case arrives while the reviewer reads the queue.")
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_have_attribute("aria-selected", "true", timeout=1000)
    desk.keyboard.press("Enter")
    desk.wait_for_url(f"**/cases/{second.pk}/", timeout=1000)


def test_a_reconnect_keeps_what_the_reviewer_is_typing(
    sign_in: SignIn, reviewer: User, ingest: Ingest
) -> None:
    case = ingest()
    sockets: list[WebSocketRoute] = []

    def route(ws: WebSocketRoute) -> None:
        ws.connect_to_server()
        sockets.append(ws)

    desk = sign_in(reviewer, f"/cases/{case.pk}/", prepare=route_console_socket(route))
    desk.keyboard.press("e")
    desk.keyboard.type(" Typed before the blip.")
    sockets[-1].close(code=1012, reason="Service Restart")  # what uvicorn sends on restart
    expect(desk.locator("#live-state")).not_to_have_class(re.compile(r"\bok\b"))
    wait_live(desk)
    assert len(sockets) == 2
    expect(desk.locator("#edit-draft")).to_have_value(
        "I have refunded 80 EUR to your card. Typed before the blip.", timeout=1000
    )


SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'


def test_markup_from_the_agent_shows_as_text_and_runs_nothing(
    sign_in: SignIn, supervisor: User, ingest: Ingest
) -> None:
    evil: dict[str, Any] = {
        "summary": f"Refund {SCRIPT} {IMG}",
        "customer": {"id": "cust-evil", "name": f"Mallory {IMG}"},
        "transcript": [
            {"role": "customer", "text": f"Hello {SCRIPT}"},
            {"role": "agent", "text": f"Let me see {IMG}"},
        ],
        "draft_response": f"Dear {SCRIPT} {IMG}",
        "proposed_action": {"name": "issue_refund", "args": {"note": IMG}},
    }
    case = ingest(**evil)
    board = sign_in(supervisor, "/?view=all")
    late = ingest(**{**evil, "summary": f"Late {IMG}"})  # arrives over the socket
    expect(board.locator(f"#case-row-{late.pk}")).to_contain_text(f"Late {IMG}")
    row = board.locator(f"#case-row-{case.pk}")
    expect(row).to_contain_text(f"Refund {SCRIPT} {IMG}")
    expect(row).to_contain_text(f"Mallory {IMG}")
    assert_harmless(board)

    board.goto(f"/cases/{case.pk}/")
    wait_live(board)
    board.keyboard.press("c")  # every live part of the briefing is sent again
    expect(status_of(board)).to_have_text("In review")
    expect(board.locator(".summary")).to_have_text(evil["summary"])
    expect(board.locator(".col-side")).to_contain_text(f"Mallory {IMG}")
    expect(board.locator("#msg-1 .text")).to_have_text(f"Hello {SCRIPT}")
    expect(board.locator("#msg-2 .text")).to_have_text(f"Let me see {IMG}")
    expect(board.locator("#case-actions .draft")).to_have_text(evil["draft_response"])
    expect(board.locator("#case-actions .kv")).to_contain_text(IMG)
    assert_harmless(board)


def assert_harmless(page: Page) -> None:
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("main script").count() == 0


def test_two_reviewers_see_each_other_and_the_later_one_is_told_who_decided(
    sign_in: SignIn, reviewer: User, reviewer2: User, ingest: Ingest
) -> None:
    case = ingest()
    ann = sign_in(reviewer, f"/cases/{case.pk}/")

    # Bob's socket goes through a relay that can hold what the server sends him, so his
    # approve races Ann's exactly as over a slow network: sent on a version that is gone.
    held: list[str | bytes] = []
    relay: dict[str, Any] = {"hold": False}

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        relay["page"] = ws

        def from_server(message: str | bytes) -> None:
            if relay["hold"]:
                held.append(message)
            else:
                ws.send(message)

        server.on_message(from_server)

    bob = sign_in(reviewer2, f"/cases/{case.pk}/", prepare=route_console_socket(route))
    expect(ann.locator("#viewers")).to_have_text("Also viewing: Bob")
    expect(bob.locator("#viewers")).to_have_text("Also viewing: Ann")

    relay["hold"] = True
    ann.keyboard.press("a")
    expect(status_of(ann)).to_have_text("Resolved")
    bob.keyboard.press("a")  # on the page he still sees: the case as Ann found it
    relay["hold"] = False
    for message in held:
        relay["page"].send(message)

    expect(status_of(bob)).to_have_text("Resolved")
    expect(bob.locator("#toasts")).to_contain_text("Ann already decided this case (approve)")
    expect(bob.locator("#form-approve")).to_have_count(0)
    expect(bob.locator("#case-actions .decided")).to_contain_text("by Ann")
    assert [(d.verb, d.reviewer) for d in Decision.objects.filter(escalation=case)] == [
        ("approve", reviewer)
    ]


FIXTURE_PACKAGES = (
    "pricing_acme",
    "refund_over_amount",
    "frustrated_customer",
    "gas_leak",
    "human_request",
    "order_status_l1",
)


def test_screenshots_of_the_inbox_and_a_briefing(
    sign_in: SignIn,
    supervisor: User,
    integration: Integration,
    task_types: dict[str, TaskType],
    ingest: Ingest,
    results_dir: Path,
) -> None:
    def ingest_fixtures() -> dict[str, Escalation]:
        cases = {}
        for name in FIXTURE_PACKAGES:
            package = HandoffIn.model_validate(load_fixture(name))
            cases[name] = escalation_ingest(integration=integration, package=package).escalation
        return cases

    cases = in_thread(ingest_fixtures)
    for _ in range(3):
        ingest()
    page = sign_in(supervisor, "/?view=all")
    expect(page.locator(f"#case-row-{cases['pricing_acme'].pk}")).to_be_visible()
    page.screenshot(path=results_dir / "inbox.png")

    page.goto(f"/cases/{cases['pricing_acme'].pk}/")
    wait_live(page)
    page.screenshot(path=results_dir / "briefing.png")
    page.screenshot(path=results_dir / "briefing-full.png", full_page=True)
