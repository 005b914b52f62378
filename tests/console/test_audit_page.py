"""The audit page (DESIGN §9) through real requests: who may see it, filters, keyset pages,
verifying the chain from the page, and streamed exports that can be re-hashed."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from escalations.audit import AuditFilters, _event_hash, audit_page
from escalations.decisions import escalation_accept
from escalations.models import AuditEvent
from tests.escalations.test_audit import TABLE, tampering
from tests.people import make_user

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_user(db: None):
    return make_user("ada", "admin")


@pytest.fixture
def history(reviewer, make_case):
    """Two cases; ann accepts the first."""
    first, second = make_case(), make_case()
    escalation_accept(escalation_id=first.pk, reviewer=reviewer, version=first.version)
    return first, second


def rows_in(body: str) -> set[int]:
    return {e.seq for e in AuditEvent.objects.all() if f'id="audit-{e.seq}"' in body}


def test_only_supervisors_and_admins_see_the_trail(reviewer, nobody, supervisor, admin_user):
    for path in ("/audit/", "/audit/export.csv", "/audit/export.jsonl"):
        assert Client().get(path).status_code == 302  # to the login page
        assert client_for(reviewer).get(path).status_code == 403
        assert client_for(nobody).get(path).status_code == 403
        assert client_for(supervisor).get(path).status_code == 200
        assert client_for(admin_user).get(path).status_code == 200
    assert client_for(reviewer).post("/audit/verify").status_code == 403
    # The link in the top bar follows the permission.
    assert 'href="/audit/"' not in client_for(reviewer).get("/").content.decode()
    assert 'href="/audit/"' in client_for(supervisor).get("/").content.decode()


def test_filters_by_case_actor_verb_and_period(supervisor, history):
    first, _ = history
    client = client_for(supervisor)
    everything = set(AuditEvent.objects.values_list("seq", flat=True))
    assert rows_in(client.get("/audit/").content.decode()) == everything

    by_case = rows_in(client.get("/audit/", {"case": first.pk}).content.decode())
    assert by_case == set(first.audit_events.values_list("seq", flat=True))

    by_actor = rows_in(client.get("/audit/", {"actor": "ann"}).content.decode())
    accepted = AuditEvent.objects.get(verb="escalation.accepted")
    assert by_actor == {accepted.seq}

    by_verb = rows_in(client.get("/audit/", {"verb": "escalation.received"}).content.decode())
    assert by_verb == set(
        AuditEvent.objects.filter(verb="escalation.received").values_list("seq", flat=True)
    )
    # A family prefix matches all its verbs, never a verb that merely starts alike.
    family = rows_in(client.get("/audit/", {"verb": "escalation"}).content.decode())
    assert family == set(
        AuditEvent.objects.filter(verb__startswith="escalation.").values_list("seq", flat=True)
    )

    today = timezone.localdate()
    in_period = {"since": today.isoformat(), "until": today.isoformat()}
    assert rows_in(client.get("/audit/", in_period).content.decode()) == everything
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert rows_in(client.get("/audit/", {"since": tomorrow}).content.decode()) == set()
    # Nonsense is ignored rather than a server error.
    response = client.get("/audit/", {"case": "abc", "since": "yesterday", "before": "x"})
    assert response.status_code == 200 and rows_in(response.content.decode()) == everything


def test_pages_newest_first_by_seq(supervisor, history):
    seqs = sorted(AuditEvent.objects.values_list("seq", flat=True), reverse=True)
    first = audit_page(filters=AuditFilters(), limit=3)
    assert [e.seq for e in first.rows] == seqs[:3] and first.next_cursor == seqs[2]
    second = audit_page(filters=AuditFilters(), before=first.next_cursor, limit=3)
    assert [e.seq for e in second.rows] == seqs[3:6]
    body = client_for(supervisor).get("/audit/", {"before": seqs[2]}).content.decode()
    assert rows_in(body) == set(seqs[3:])


def test_verify_from_the_page_reports_ok_then_the_first_broken_event(supervisor, history):
    client = client_for(supervisor)
    count = AuditEvent.objects.count()
    body = client.post("/audit/verify").content.decode()
    assert f"Chain OK: all {count} events verified." in body

    victim = AuditEvent.objects.order_by("seq")[2]
    with tampering() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET data = %s WHERE seq = %s", ['{"x": 1}', victim.seq])
    body = client.post("/audit/verify", HTTP_HX_REQUEST="true").content.decode()
    assert f"The chain is broken at event {victim.seq}" in body and "altered" in body
    assert "<html" not in body  # htmx gets only the result


def test_jsonl_export_streams_the_filtered_events_in_chain_order_and_rehashes(supervisor, history):
    first, _ = history
    response = client_for(supervisor).get("/audit/export.jsonl", {"case": first.pk})
    assert response.streaming
    assert response["Content-Type"].startswith("application/x-ndjson")
    assert "attachment" in response["Content-Disposition"]
    lines = b"".join(response.streaming_content).decode().splitlines()
    rows = [json.loads(line) for line in lines]
    expected = list(first.audit_events.order_by("seq"))
    assert [r["seq"] for r in rows] == [e.seq for e in expected]
    for row in rows:  # a regulator can check each exported event against its hash
        digest = _event_hash(
            seq=row["seq"],
            prev_hash=row["prev_hash"],
            created_at=timezone.datetime.fromisoformat(row["created_at"]),
            actor_type=row["actor_type"],
            actor_label=row["actor_label"],
            verb=row["verb"],
            escalation_id=row["escalation_id"],
            object_type=row["object_type"],
            object_id=row["object_id"],
            data=row["data"],
        )
        assert digest == row["hash"]


def test_csv_export_has_a_header_and_one_row_per_event(supervisor, history):
    response = client_for(supervisor).get("/audit/export.csv", {"verb": "escalation.accepted"})
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    accepted = AuditEvent.objects.get(verb="escalation.accepted")
    assert len(table) == 1
    assert (table[0]["seq"], table[0]["actor_label"], table[0]["hash"]) == (
        str(accepted.seq),
        "ann",
        accepted.hash,
    )
    assert json.loads(table[0]["data"]) == accepted.data
