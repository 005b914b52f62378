"""console.rendering.inbox_audience: equal audiences must mean equal rows, since the
consoles of an audience are served one render (console/consumers.py SharedRenders)."""

from __future__ import annotations

import itertools

import pytest

from console import rendering
from escalations.decisions import escalation_accept
from tests.console.test_consumers import needs_skill, rostered
from tests.people import make_user

pytestmark = pytest.mark.django_db

QUERIES = [
    {"view": "mine"},
    {"view": "queue"},
    {"view": "all"},
    {"view": "review"},
    {"view": "queue", "priority": "2"},
    {"view": "all", "status": "in_review"},
]


def test_equal_audiences_render_equal_rows_and_unequal_ones_differ_where_lists_do(
    reviewer, reviewer2, supervisor, make_case
):
    carl = make_user("carl", "reviewer")  # not on the roster: sees the whole queue
    rostered(reviewer, ["refunds", "legal"])
    rostered(reviewer2, ["refunds"])
    legal = make_case(summary="A legal matter")
    needs_skill(legal, "legal")
    make_case(summary="A plain refund")
    held = make_case(summary="Held by Bob")
    escalation_accept(escalation_id=held.pk, reviewer=reviewer2, version=held.version)

    people = [reviewer, reviewer2, supervisor, carl]
    seen: dict[object, str] = {}
    for user, query in itertools.product(people, QUERIES):
        key = rendering.inbox_audience(user=user, query=query)
        rows = rendering.inbox_rows(user=user, query=query)
        assert seen.setdefault(key, rows) == rows, (user.username, query)

    # The lists that differ by person are told apart.
    def key(user, **query):
        return rendering.inbox_audience(user=user, query=query)

    assert key(reviewer, view="queue") != key(reviewer2, view="queue")  # skills
    assert key(reviewer, view="mine") != key(reviewer2, view="mine")
    assert key(reviewer, view="all") != key(supervisor, view="all")  # theirs vs everything
    assert key(reviewer, view="all") == key(reviewer, view="mine")  # "all" falls back
    assert key(carl, view="queue") != key(reviewer, view="queue")


def test_a_cached_row_is_the_row_a_render_gives_and_any_shown_change_renders_anew(
    supervisor, make_case
):
    from escalations.models import Customer, Escalation

    case = make_case(summary="Refund for a broken kettle")
    rendering.INBOX_ROWS.rows.clear()
    first = rendering.inbox_rows(user=supervisor, query={"view": "all"})
    assert len(rendering.INBOX_ROWS.rows) == 1
    assert rendering.inbox_rows(user=supervisor, query={"view": "all"}) == first  # a hit
    rendering.INBOX_ROWS.rows.clear()
    assert rendering.inbox_rows(user=supervisor, query={"view": "all"}) == first  # fresh

    # Changes made behind the services' back (no version bump) still show.
    Escalation.objects.filter(pk=case.pk).update(summary="Refund for <b>two</b> kettles")
    assert "Refund for &lt;b&gt;two&lt;/b&gt; kettles" in rendering.inbox_rows(
        user=supervisor, query={"view": "all"}
    )
    Customer.objects.filter(pk=case.customer_id).update(name="Renamed Customer")
    assert "Renamed Customer" in rendering.inbox_rows(user=supervisor, query={"view": "all"})
    Escalation.objects.filter(pk=case.pk).update(priority=1)
    assert 'class="row p1 ' in rendering.inbox_rows(user=supervisor, query={"view": "all"})
