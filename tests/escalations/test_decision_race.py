"""On PostgreSQL, with real separate connections: two reviewers decide the same case at the
same moment. Exactly one decision is stored; the other is refused with a clear message."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from escalations.decisions import DecisionInput, StaleCase, escalation_decide
from escalations.errors import BatonError
from escalations.models import Decision, Status
from tests.people import (  # noqa: F401  (fixtures)
    agent,
    make_case,
    review_type,
    reviewer,
    reviewer2,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(case, people_and_verbs):
    barrier = threading.Barrier(len(people_and_verbs))
    outcomes: dict[str, object] = {}

    def decide(user, verb):
        try:
            barrier.wait()
            outcomes[user.username] = escalation_decide(
                escalation_id=case.pk,
                reviewer=user,
                data=DecisionInput(verb=verb, version=case.version, reason="not allowed"),
            )
        except BatonError as error:
            outcomes[user.username] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=pv) for pv in people_and_verbs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.mark.parametrize("attempt", range(5))
def test_two_reviewers_deciding_at_once_store_exactly_one_decision(
    attempt, make_case, reviewer, reviewer2
):
    case = make_case()
    outcomes = race(case, [(reviewer, "approve"), (reviewer2, "reject")])
    decisions = list(Decision.objects.filter(escalation=case))
    assert len(decisions) == 1
    winner = decisions[0].reviewer.username
    loser = "bob" if winner == "ann" else "ann"
    assert isinstance(outcomes[winner], Decision)
    refused = outcomes[loser]
    assert isinstance(refused, StaleCase)
    assert f"{winner.title()} already decided this case" in refused.message
    case.refresh_from_db()
    assert case.status == Status.RESOLVED and case.version == 2
