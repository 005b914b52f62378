"""Routing in Chromium: a case offered live to the right reviewer, moved on when the offer
times out, and reassigned from the supervisor's board, every console following along
without a reload (tests/browser/conftest.py has the live server and sign-in)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect

from escalations.models import Escalation, Status, TaskType
from routing.assignment import assignment_expire_offers
from routing.models import Presence, ReviewerProfile, ReviewerSkill, Shift, Skill
from tests.browser.conftest import in_thread
from tests.people import make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    # WhiteNoise hands Django a sync file iterator for every static file under ASGI.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous"),
]

SignIn = Callable[..., Page]
ACCEPT_WINDOW = 20  # seconds; shorter than the presence TTL, so "later" still finds people


def on_roster(user: User, *skills: str, capacity: int = 3) -> ReviewerProfile:
    """Around the clock, offline until their console opens."""
    profile = ReviewerProfile.objects.create(
        user=user, languages=["en"], capacity=capacity, presence=Presence.OFFLINE
    )
    for slug in skills:
        skill, _ = Skill.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
        ReviewerSkill.objects.create(profile=profile, skill=skill, proficiency=4)
    for day in range(7):
        Shift.objects.create(profile=profile, weekday=day, starts=time(0), ends=time(12))
        Shift.objects.create(profile=profile, weekday=day, starts=time(12), ends=time(0))
    return profile


def row(page: Page, case: Escalation) -> Any:
    return page.locator(f"#case-row-{case.pk}")


def test_an_offer_goes_live_to_the_right_reviewer_then_the_next_then_where_the_board_sends_it(
    sign_in: SignIn,
    supervisor: User,
    reviewer: User,
    reviewer2: User,
    review_type: TaskType,
    ingest: Callable[..., Escalation],
    settings: Any,
    results_dir: Path,
) -> None:
    settings.BATON_OFFER_ACCEPT_SECONDS = ACCEPT_WINDOW
    TaskType.objects.filter(pk=review_type.pk).update(required_skills=["refunds"])
    carl = make_user("carl", "reviewer")
    on_roster(reviewer, "refunds")  # Ann: first in line (nobody has had a case yet)
    on_roster(reviewer2, "refunds")  # Bob: next
    on_roster(carl, "billing")  # Carl is online too, but cannot do refunds

    ann = sign_in(reviewer, "/?view=mine")
    bob = sign_in(reviewer2, "/?view=mine")
    carls = sign_in(carl, "/?view=mine")
    expect(ann.locator("#presence-switch [aria-pressed=true]")).to_have_text("Online")
    board = sign_in(supervisor, "/board/")
    expect(board.locator(f"#load-{reviewer.pk}")).to_contain_text("0/3")

    case = ingest(summary="A refund for a kettle that arrived broken.")
    expect(row(ann, case)).to_contain_text("kettle")
    expect(row(ann, case)).to_contain_text("(offered)")
    expect(board.locator(f"#open-{case.pk} .holder")).to_have_text("Ann")
    expect(board.locator(f"#load-{reviewer.pk}")).to_contain_text("1/3")
    expect(row(bob, case)).to_have_count(0)
    expect(row(carls, case)).to_have_count(0)

    # Ann lets the offer run out: it goes back to the queue and on to Bob, never to Carl.
    later = timezone.now() + timedelta(seconds=ACCEPT_WINDOW + 1)
    assert in_thread(assignment_expire_offers, now=later) == 1
    expect(row(bob, case)).to_contain_text("(offered)")
    expect(row(ann, case)).to_have_count(0)
    expect(board.locator(f"#open-{case.pk} .holder")).to_have_text("Bob")
    expect(board.locator(f"#load-{reviewer.pk}")).to_contain_text("0/3")
    expect(row(carls, case)).to_have_count(0)

    # The supervisor sends it back to Ann from the board, with a reason.
    board.locator(f"#open-{case.pk} a.move").click()
    choice = board.locator("#reassign-to")
    expect(choice).to_be_focused()
    expect(choice.locator(f"option[value='{reviewer.pk}']")).to_contain_text("0/3 · eligible")
    expect(choice.locator(f"option[value='{reviewer2.pk}']")).to_contain_text("holds it")
    expect(choice.locator(f"option[value='{carl.pk}']")).to_contain_text("lacks refunds")
    choice.select_option(str(reviewer.pk))
    board.fill("#reassign-reason", "Ann spoke to this customer yesterday")
    board.locator("#reassign button[type=submit]").click()

    expect(board.locator("#toasts")).to_contain_text(f"Case #{case.pk} moved to Ann.")
    expect(board.locator("#reassign-to")).to_have_count(0)  # the panel closed
    expect(row(ann, case)).to_contain_text("(offered)")
    expect(row(bob, case)).to_have_count(0)
    expect(board.locator(f"#open-{case.pk} .holder")).to_have_text("Ann")
    assert board.url.endswith("/board/") and ann.url.endswith("/?view=mine")  # no reloads
    case.refresh_from_db()
    assert (case.status, case.assignee_id) == (Status.ASSIGNED, reviewer.pk)

    board.screenshot(path=results_dir / "routing-board.png", full_page=True)
    ann.screenshot(path=results_dir / "routing-ann-inbox.png")
