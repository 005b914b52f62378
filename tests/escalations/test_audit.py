"""The hash-chained audit trail (DESIGN §9): every change is an event, and tampering shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client

from escalations.audit import GENESIS, Actor, _event_hash, audit_record, audit_verify
from escalations.models import AuditEvent, Escalation, Integration
from tests.conftest import load_fixture, post_json

pytestmark = pytest.mark.django_db

TABLE = AuditEvent._meta.db_table
TRIGGER = "baton_audit_append_only"


def trail() -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("seq"))


@pytest.fixture
def busy_trail(api_client: Client) -> list[AuditEvent]:
    """A trail with cases received, auto-resolved, added to, cancelled and rated."""
    pricing = post_json(api_client, "/escalations", load_fixture("pricing_acme")).json()
    post_json(api_client, "/escalations", load_fixture("order_status_l1"))
    post_json(
        api_client,
        f"/escalations/{pricing['id']}/messages",
        {"messages": [{"role": "customer", "text": "Can I talk to a human?"}]},
    )
    post_json(api_client, f"/escalations/{pricing['id']}/cancel", {"reason": "went by phone"})
    post_json(api_client, f"/escalations/{pricing['id']}/feedback", {"csat": 4, "effort": 3})
    return trail()


@contextmanager
def tampering() -> Iterator[Any]:
    """A raw cursor that may rewrite history: on PostgreSQL the guard trigger is off inside."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # ALTER TABLE refuses while deferred FK checks of this transaction are pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {TRIGGER}")
        try:
            yield cursor
        finally:
            if connection.vendor == "postgresql":
                cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER {TRIGGER}")


# --- What gets written ------------------------------------------------------------------------


def test_every_change_writes_a_chained_event(
    busy_trail: list[AuditEvent], integration: Integration
) -> None:
    pricing = Escalation.objects.get(external_id="conv-acme-2026-0412")
    auto = Escalation.objects.get(external_id="chat-ord-90001")

    assert [(e.verb, e.escalation_id) for e in busy_trail] == [
        ("integration.created", None),
        ("escalation.received", pricing.pk),
        ("escalation.received", auto.pk),
        ("escalation.auto_resolved", auto.pk),
        ("escalation.messages_appended", pricing.pk),
        ("escalation.raised", pricing.pk),
        ("escalation.cancelled", pricing.pk),
        ("escalation.feedback", pricing.pk),
    ]
    assert [e.seq for e in busy_trail] == list(range(1, len(busy_trail) + 1))
    assert busy_trail[0].prev_hash == GENESIS
    for before, after in pairwise(busy_trail):
        assert after.prev_hash == before.hash
    assert len({e.hash for e in busy_trail}) == len(busy_trail)


def test_events_say_who_did_what(busy_trail: list[AuditEvent], integration: Integration) -> None:
    by_verb: dict[str, AuditEvent] = {}
    for event in busy_trail:
        by_verb.setdefault(event.verb, event)

    received = by_verb["escalation.received"]
    assert (received.actor_type, received.actor_label) == ("agent", "agent:Acme support bot")
    assert received.integration_id == integration.pk
    assert received.data["external_id"] == "conv-acme-2026-0412"
    assert received.data["level"] == 2 and received.data["status"] == "queued"
    assert len(received.data["package_sha256"]) == 64
    assert by_verb["escalation.auto_resolved"].actor_type == "system"
    assert by_verb["escalation.raised"].data["after"]["level"] == 3
    assert by_verb["escalation.cancelled"].data == {"from": "queued", "reason": "went by phone"}
    assert by_verb["escalation.feedback"].data == {"csat": 4, "effort": 3, "comment": ""}
    assert by_verb["escalation.feedback"].object_type == "escalations.feedback"


def test_refused_requests_write_no_event(api_client: Client, busy_trail: list[AuditEvent]) -> None:
    pricing = Escalation.objects.get(external_id="conv-acme-2026-0412")
    changed = load_fixture("pricing_acme") | {"confidence": 0.1}

    assert post_json(api_client, "/escalations", changed).status_code == 409
    assert post_json(api_client, "/escalations", load_fixture("pricing_acme")).status_code == 200
    assert post_json(api_client, f"/escalations/{pricing.pk}/cancel", {}).status_code == 200
    feedback = post_json(api_client, f"/escalations/{pricing.pk}/feedback", {"csat": 1})
    assert feedback.status_code == 409

    assert trail() == busy_trail


@pytest.mark.django_db(transaction=True)
def test_audit_record_refuses_to_run_outside_a_transaction() -> None:
    with pytest.raises(RuntimeError, match="inside the change's transaction"):
        audit_record(actor=Actor.system(), verb="test.outside")

    assert not AuditEvent.objects.filter(verb="test.outside").exists()


# --- Verification -----------------------------------------------------------------------------


def test_untouched_chain_verifies(busy_trail: list[AuditEvent]) -> None:
    assert audit_verify() == (len(busy_trail), None)


def test_empty_trail_verifies(db: None) -> None:
    assert audit_verify() == (0, None)


def test_altered_data_is_detected_at_its_event(busy_trail: list[AuditEvent]) -> None:
    victim = busy_trail[3]
    with tampering() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET data = %s WHERE seq = %s",
            ['{"sampled_for_review": true}', victim.seq],
        )

    count, first_break = audit_verify()

    assert count == len(busy_trail)
    assert first_break is not None
    assert first_break.seq == victim.seq
    assert "altered" in first_break.problem


def test_altered_actor_is_detected(busy_trail: list[AuditEvent]) -> None:
    victim = busy_trail[6]
    with tampering() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET actor_label = %s WHERE seq = %s", ["user:alice", victim.seq]
        )

    first_break = audit_verify()[1]

    assert first_break is not None and first_break.seq == victim.seq


def test_rewritten_event_with_a_fresh_hash_breaks_the_next_link(
    busy_trail: list[AuditEvent],
) -> None:
    """A forger who recomputes the altered row's hash still breaks the row after it."""
    victim = busy_trail[2]
    assert victim.data["level"] == 1
    forged_data = {**victim.data, "level": 4}
    forged_hash = _event_hash(
        seq=victim.seq,
        prev_hash=victim.prev_hash,
        created_at=victim.created_at,
        actor_type=victim.actor_type,
        actor_label=victim.actor_label,
        verb=victim.verb,
        escalation_id=victim.escalation_id,
        object_type=victim.object_type,
        object_id=victim.object_id,
        data=forged_data,
    )
    with tampering() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET data = %s, hash = %s WHERE seq = %s",
            [json.dumps(forged_data), forged_hash, victim.seq],
        )

    first_break = audit_verify()[1]

    assert first_break is not None
    assert first_break.seq == victim.seq + 1
    assert "link to the previous event" in first_break.problem


def test_deleted_event_leaves_a_gap_that_is_detected(busy_trail: list[AuditEvent]) -> None:
    victim = busy_trail[4]
    with tampering() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE seq = %s", [victim.seq])

    count, first_break = audit_verify()

    assert count == len(busy_trail) - 1
    assert first_break is not None
    assert first_break.seq == victim.seq + 1
    assert f"expected event {victim.seq}" in first_break.problem


def test_deleted_last_events_are_not_detectable_by_the_chain_alone(
    busy_trail: list[AuditEvent],
) -> None:
    """Documenting a limit: truncating the tail leaves a valid, shorter chain.

    Catching that needs an anchor outside the table (an exported head hash).
    """
    with tampering() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE seq = %s", [busy_trail[-1].seq])

    assert audit_verify() == (len(busy_trail) - 1, None)


def test_swapped_events_are_detected(busy_trail: list[AuditEvent]) -> None:
    first, second = busy_trail[1], busy_trail[2]
    with tampering() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET seq = 999999 WHERE seq = %s", [first.seq])
        cursor.execute(f"UPDATE {TABLE} SET seq = %s WHERE seq = %s", [first.seq, second.seq])
        cursor.execute(f"UPDATE {TABLE} SET seq = %s WHERE seq = 999999", [second.seq])

    first_break = audit_verify()[1]

    assert first_break is not None and first_break.seq == first.seq


# --- PostgreSQL refuses to rewrite history ----------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        f"UPDATE {TABLE} SET data = '{{}}' WHERE seq = 2",
        f"UPDATE {TABLE} SET verb = 'x'",
        f"DELETE FROM {TABLE} WHERE seq = 2",
        f"DELETE FROM {TABLE}",
    ],
)
def test_postgres_trigger_refuses_update_and_delete(busy_trail: list[AuditEvent], sql: str) -> None:
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)

    assert trail() == busy_trail
    assert [e.data for e in trail()] == [e.data for e in busy_trail]
    assert audit_verify() == (len(busy_trail), None)


@pytest.mark.postgres
def test_postgres_trigger_refuses_the_orm_too(busy_trail: list[AuditEvent]) -> None:
    event = AuditEvent.objects.get(seq=2)
    event.data = {"forged": True}

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        event.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=3).delete()

    assert audit_verify() == (len(busy_trail), None)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_trigger_is_back_after_committed_tampering(busy_trail: list[AuditEvent]) -> None:
    with tampering() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET verb = 'forged' WHERE seq = 2")

    assert audit_verify()[1] is not None
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=3).update(verb="again")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = %s AND tgrelid = %s::regclass",
            [TRIGGER, TABLE],
        )
        assert cursor.fetchone() == ("O",)


# --- The management command -------------------------------------------------------------------


def test_command_reports_an_intact_trail(
    busy_trail: list[AuditEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("audit_verify")

    assert f"OK: {len(busy_trail)} events verified" in capsys.readouterr().out


def test_command_fails_at_the_first_broken_event(busy_trail: list[AuditEvent]) -> None:
    with tampering() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET verb = 'forged' WHERE seq = %s", [busy_trail[3].seq])
        cursor.execute(f"UPDATE {TABLE} SET verb = 'forged' WHERE seq = %s", [busy_trail[5].seq])

    with pytest.raises(CommandError) as excinfo:
        call_command("audit_verify")

    message = str(excinfo.value)
    assert f"event {busy_trail[3].seq}:" in message
    assert "altered" in message
    assert f"event {busy_trail[5].seq}:" not in message
    assert excinfo.value.returncode != 0
