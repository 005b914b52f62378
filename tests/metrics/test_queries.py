"""Each metric against figures worked out by hand from the history in conftest.py.

Each test's docstring is the metric's definition, word for word: the page shows the same
text (test_every_definition_is_a_test_docstring keeps them together).
"""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest

from metrics import queries
from metrics.queries import DEFINITIONS, MetricTable
from tests.metrics.conftest import PERIOD, History

pytestmark = pytest.mark.django_db


def figures(table: MetricTable, *keys: str) -> dict[str, tuple[object, ...]]:
    return {row["label"]: tuple(row[k] for k in keys) for row in table.rows}


def test_every_definition_is_a_test_docstring() -> None:
    module = sys.modules[__name__]
    for key, definition in DEFINITIONS.items():
        doc = getattr(module, f"test_{key}").__doc__
        assert " ".join(doc.split()) == definition, key
    assert set(DEFINITIONS) == set(queries.METRICS)


def test_override_rate(history: History) -> None:
    """Share of final decisions that were anything other than an unchanged approve (edit,
    reject, respond, take over, reverse)."""
    table = queries.override_rate(PERIOD)
    assert figures(table, "decisions", "overridden", "rate") == {
        "Order status": (3, 2, pytest.approx(2 / 3)),  # reverse, approve, edit
        "Refund review": (4, 2, 0.5),  # approve, edit, reject, approve (escalate not final)
        "All": (7, 4, pytest.approx(4 / 7)),
    }
    billing = queries.override_rate(replace(PERIOD, team="billing"))  # ann's decisions
    assert figures(billing, "decisions", "overridden") == {
        "Order status": (1, 0),
        "Refund review": (2, 1),
        "All": (3, 1),
    }


def test_edit_rate(history: History) -> None:
    """Share of final decisions that edited the agent's proposal, and the average edit size:
    draft lines added or removed plus action arguments changed."""
    table = queries.edit_rate(PERIOD)
    assert figures(table, "decisions", "edits", "rate", "size") == {
        "Order status": (3, 1, pytest.approx(1 / 3), 2.0),  # two draft lines
        "Refund review": (4, 1, 0.25, 4.0),  # three draft lines and one argument
        "All": (7, 2, pytest.approx(2 / 7), 3.0),
    }
    only_order = queries.edit_rate(replace(PERIOD, task_type="order_status"))
    assert [r["label"] for r in only_order.rows] == ["Order status", "All"]


def test_re_escalation_rate(history: History) -> None:
    """Share of cases handed to people (level L2 or above) that a reviewer escalated further
    at least once."""
    table = queries.re_escalation_rate(PERIOD)
    assert figures(table, "cases", "re_escalated", "rate") == {
        "Order status": (3, 0, 0.0),
        "Refund review": (5, 1, 0.2),
        "All": (8, 1, 0.125),
    }


def test_handoff_rate(history: History) -> None:
    """Per task type, the cases handed to people (L2 or above) against all cases the agents
    sent, and the cases sent against the times agents asked /evaluate."""
    table = queries.handoff_rate(PERIOD)
    keys = ("evaluated", "sent", "auto_resolved", "to_people", "rate", "sent_rate")
    assert figures(table, *keys) == {
        "Order status": (20, 5, 2, 3, 0.6, 0.25),
        "Refund review": (10, 5, 0, 5, 1.0, 0.5),  # the tally five days earlier is out
        "All": (30, 10, 2, 8, 0.8, pytest.approx(1 / 3)),
    }


def test_time_to_accept(history: History) -> None:
    """Median and 90th percentile of the time from a case's arrival to a reviewer accepting
    it (the latest acceptance when it was re-escalated)."""
    table = queries.time_to_accept(PERIOD)
    # Refund review: 30 60 120 300; Order status: 10 20 50; all seven together.
    assert figures(table, "cases", "p50", "p90") == {
        "Order status": (3, pytest.approx(20), pytest.approx(44)),
        "Refund review": (4, pytest.approx(90), pytest.approx(246)),
        "All": (7, pytest.approx(50), pytest.approx(192)),
    }
    billing = queries.time_to_accept(replace(PERIOD, team="billing"))  # ann holds 1 2 8 9
    assert figures(billing, "cases", "p50") == {
        "Order status": (2, pytest.approx(30)),
        "Refund review": (2, pytest.approx(90)),
        "All": (4, pytest.approx(55)),
    }


def test_time_to_resolve(history: History) -> None:
    """Median and 90th percentile of the time from a case's arrival to its final decision,
    over resolved cases."""
    table = queries.time_to_resolve(PERIOD)
    # Refund review: 90 600 1200 3000; Order status: 30 40.
    assert figures(table, "cases", "p50", "p90") == {
        "Order status": (2, pytest.approx(35), pytest.approx(39)),
        "Refund review": (4, pytest.approx(900), pytest.approx(2460)),
        "All": (6, pytest.approx(345), pytest.approx(2100)),
    }


def test_sla_attainment(history: History) -> None:
    """Per priority band, the share of cases with a resolve target that were resolved by it;
    a case still open past its target counts as missed, one not yet due is left out."""
    table = queries.sla_attainment(PERIOD)
    assert figures(table, "cases", "judged", "met", "breached", "rate") == {
        "P2": (2, 2, 1, 0, 0.5),  # case 2 resolved after its target
        "P3": (4, 4, 3, 1, 0.75),  # case 5 still queued past its target
        "P4": (2, 1, 1, 0, 1.0),  # case 9 open, not yet due
        "All": (8, 7, 5, 1, pytest.approx(5 / 7)),
    }


def test_satisfaction(history: History) -> None:
    """Average customer satisfaction (CSAT, 1-5) and customer effort (1-7, lower is better)
    reported after a handoff."""
    table = queries.satisfaction(PERIOD)
    assert figures(table, "responses", "csat", "effort") == {
        "Order status": (1, 4.0, None),
        "Refund review": (3, 3.0, 4.0),
        "All": (4, 3.25, 4.0),
    }


def test_triggers(history: History) -> None:
    """How often each trigger fired (each policy rule on its own line) and how its cases
    ended: auto-resolved, approved unchanged or overridden by a reviewer."""
    table = queries.triggers(PERIOD)
    keys = ("cases", "auto_resolved", "decided", "approved", "overridden", "rate")
    assert [r["label"] for r in table.rows] == [
        "low_confidence",
        "policy_rule: refund_limit",
        "sentiment",
        "agent_requested",
        "policy_rule: abusive_language",
        "policy_rule: vip_customer",
    ]
    assert figures(table, *keys) == {
        "low_confidence": (4, 0, 4, 3, 1, 0.25),
        "policy_rule: refund_limit": (2, 0, 2, 0, 2, 1.0),
        "sentiment": (2, 0, 1, 0, 1, 1.0),
        "agent_requested": (1, 0, 0, 0, 0, None),
        "policy_rule: abusive_language": (1, 0, 1, 0, 1, 1.0),
        "policy_rule: vip_customer": (1, 1, 1, 0, 1, 1.0),  # an L1 case reversed
    }
    order = queries.triggers(replace(PERIOD, task_type="order_status"))
    assert figures(order, "cases") == {
        "low_confidence": (2,),
        "policy_rule: vip_customer": (1,),
        "sentiment": (1,),
    }


def test_reviewers(history: History) -> None:
    """Per reviewer, the final decisions they made, the share that overrode the agent and
    their average time to decide."""
    table = queries.reviewers(PERIOD)
    assert figures(table, "team", "decisions", "overridden", "rate", "avg_seconds") == {
        "Bob": ("Support", 4, 3, 0.75, 95.0),  # reject 100, approve 20, reverse 200, edit 60
        "Ann": ("Billing", 3, 1, pytest.approx(1 / 3), 16.0),  # approve 5, edit 40, approve 3
        "All": ("", 7, 4, pytest.approx(4 / 7), pytest.approx(428 / 7)),
    }
    assert table.row("Bob")["per_day"] == pytest.approx(4 / 11)


def test_quick_approvals(history: History) -> None:
    """Share of final decisions that approved the proposal unchanged within 10 seconds of
    taking the case: a sign the agent escalates needlessly."""
    table = queries.quick_approvals(PERIOD)
    assert figures(table, "decisions", "quick", "rate") == {
        "Order status": (3, 1, pytest.approx(1 / 3)),  # 3 s
        "Refund review": (4, 1, 0.25),  # 5 s; 20 s is not quick
        "All": (7, 2, pytest.approx(2 / 7)),
    }


def test_an_empty_period_has_only_an_empty_total(history: History) -> None:
    empty = replace(PERIOD, team="nobody-here")
    for name, query in queries.METRICS.items():
        table = query(empty)
        assert all(r["label"] == "All" for r in table.rows), name
