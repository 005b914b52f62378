"""The append-only, hash-chained audit trail (DESIGN §9).

Each event's hash covers its content and the previous event's hash, so changing, removing
or reordering any row breaks every link after it. Appends are serialised (an advisory lock
on PostgreSQL; SQLite's IMMEDIATE transactions already serialise writers) so the chain
never forks.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import ContextDecorator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from escalations.models import AuditEvent, Escalation, Integration

GENESIS = "0" * 64
_LOCK_KEY = 0x6261746F6E  # "baton": the advisory lock that orders appends on PostgreSQL


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder
    )


def _event_hash(
    *,
    seq: int,
    prev_hash: str,
    created_at: datetime,
    actor_type: str,
    actor_label: str,
    verb: str,
    escalation_id: int | None,
    object_type: str,
    object_id: str,
    data: Any,
) -> str:
    body = canonical_json(
        [
            seq,
            prev_hash,
            created_at.isoformat(timespec="microseconds"),
            actor_type,
            actor_label,
            verb,
            escalation_id,
            object_type,
            object_id,
            data,
        ]
    )
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Actor:
    type: str
    label: str
    user: Any = None
    integration: Integration | None = None

    @classmethod
    def agent(cls, integration: Integration) -> Actor:
        return cls(AuditEvent.ActorType.AGENT, f"agent:{integration.name}", integration=integration)

    @classmethod
    def person(cls, user: Any) -> Actor:
        return cls(AuditEvent.ActorType.USER, user.get_username(), user=user)

    @classmethod
    def system(cls, label: str = "baton") -> Actor:
        return cls(AuditEvent.ActorType.SYSTEM, label)


def audit_lock() -> None:
    """Take the trail's append lock now (PostgreSQL; SQLite's IMMEDIATE transactions already
    serialise writers). Every write transaction takes it first, before any row lock, so
    locks are always taken in one order (the trail, then rows) and no transaction can
    deadlock against another's append."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


class audited_transaction(ContextDecorator):
    """`transaction.atomic` for a service that records audit events: the trail's lock is
    taken on entry. As a decorator: `@audited_transaction()`."""

    def __enter__(self) -> audited_transaction:
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        try:
            audit_lock()
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._atomic.__exit__(*exc)


def audit_record(
    *,
    actor: Actor,
    verb: str,
    escalation: Escalation | None = None,
    obj: Any = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Must run inside the transaction of the change it records."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the change's transaction")
    audit_lock()  # re-entrant: a no-op when the service took it on entry
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
    # Store exactly what is hashed: JSON-normal data, microsecond timestamps.
    clean_data = json.loads(canonical_json(data or {}))
    created_at = timezone.now()
    object_type = obj._meta.label_lower if obj is not None else ""
    object_id = str(obj.pk) if obj is not None else ""
    digest = _event_hash(
        seq=seq,
        prev_hash=prev_hash,
        created_at=created_at,
        actor_type=actor.type,
        actor_label=actor.label,
        verb=verb,
        escalation_id=escalation.pk if escalation else None,
        object_type=object_type,
        object_id=object_id,
        data=clean_data,
    )
    return AuditEvent.objects.create(
        seq=seq,
        created_at=created_at,
        actor_type=actor.type,
        actor_label=actor.label,
        user=actor.user,
        integration=actor.integration,
        verb=verb,
        escalation=escalation,
        object_type=object_type,
        object_id=object_id,
        data=clean_data,
        prev_hash=prev_hash,
        hash=digest,
    )


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    problem: str


def audit_chain_breaks(*, batch_size: int = 2000) -> Iterator[ChainBreak]:
    """Walk the chain in order and yield each broken link (the first is what matters)."""
    expected_seq, prev_hash = 1, GENESIS
    events = AuditEvent.objects.order_by("seq").iterator(chunk_size=batch_size)
    for event in events:
        if event.seq != expected_seq:
            yield ChainBreak(event.seq, f"expected event {expected_seq}: events are missing")
        if event.prev_hash != prev_hash:
            yield ChainBreak(event.seq, "its link to the previous event does not match")
        digest = _event_hash(
            seq=event.seq,
            prev_hash=event.prev_hash,
            created_at=event.created_at,
            actor_type=event.actor_type,
            actor_label=event.actor_label,
            verb=event.verb,
            escalation_id=event.escalation_id,
            object_type=event.object_type,
            object_id=event.object_id,
            data=event.data,
        )
        if digest != event.hash:
            yield ChainBreak(event.seq, "its content does not match its hash (altered)")
        expected_seq, prev_hash = event.seq + 1, event.hash


def audit_verify() -> tuple[int, ChainBreak | None]:
    """(events checked, first break or None)."""
    count = AuditEvent.objects.count()
    first = next(audit_chain_breaks(), None)
    return count, first


# --- Reading the trail (the audit page and its exports) --------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    """What a regulator narrows the trail to; an unusable value is dropped, never a 500."""

    case: int | None = None
    actor: str = ""
    verb: str = ""
    since: date | None = None
    until: date | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> AuditFilters:
        case_raw = (query.get("case") or "").strip().lstrip("#")
        return cls(
            case=int(case_raw) if case_raw.isdigit() else None,
            actor=(query.get("actor") or "").strip()[:200],
            verb=(query.get("verb") or "").strip()[:64],
            since=_date_or_none(query.get("since")),
            until=_date_or_none(query.get("until")),
        )

    def as_query(self, **overrides: Any) -> str:
        values = {
            "case": self.case or "",
            "actor": self.actor,
            "verb": self.verb,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            **overrides,
        }
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def _date_or_none(value: str | None) -> date | None:
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        return None


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def audit_events_filtered(*, filters: AuditFilters) -> QuerySet[AuditEvent]:
    """Events matching the filters, unordered. `actor` matches the label (a username,
    `agent:<name>`, `baton`) from its start; `verb` matches a whole verb or its family
    (`escalation.` or `escalation` for every escalation verb)."""
    events = AuditEvent.objects.all()
    if filters.case is not None:
        events = events.filter(escalation_id=filters.case)
    if filters.actor:
        events = events.filter(actor_label__istartswith=filters.actor)
    if filters.verb:
        family = filters.verb if filters.verb.endswith(".") else f"{filters.verb}."
        events = events.filter(Q(verb=filters.verb) | Q(verb__startswith=family))
    if filters.since:
        events = events.filter(created_at__gte=_day_start(filters.since))
    if filters.until:  # the whole of the last day
        events = events.filter(created_at__lt=_day_start(filters.until + timedelta(days=1)))
    return events


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditEvent]
    next_cursor: int | None


def audit_page(*, filters: AuditFilters, before: int | None = None, limit: int = 100) -> AuditPage:
    """Newest first, keyset-paginated on `seq` (unique and ordered by the chain)."""
    events = audit_events_filtered(filters=filters).select_related("escalation")
    if before is not None:
        events = events.filter(seq__lt=before)
    rows = list(events.order_by("-seq")[: limit + 1])
    next_cursor = rows[limit - 1].seq if len(rows) > limit else None
    return AuditPage(rows=rows[:limit], next_cursor=next_cursor)


def audit_verbs() -> list[str]:
    """The verbs on record, for the filter's suggestions."""
    return list(AuditEvent.objects.order_by("verb").values_list("verb", flat=True).distinct())


EXPORT_FIELDS = (
    "seq",
    "created_at",
    "actor_type",
    "actor_label",
    "verb",
    "escalation_id",
    "object_type",
    "object_id",
    "data",
    "prev_hash",
    "hash",
)


def audit_export_rows(*, filters: AuditFilters, batch_size: int = 2000) -> Iterator[dict[str, Any]]:
    """The filtered events in chain order, one dict each, fetched in batches: an export of the
    whole trail never holds it in memory. Timestamps as hashed (microseconds), so an exported
    row can be re-hashed and checked against its `hash`."""
    events = (
        audit_events_filtered(filters=filters)
        .order_by("seq")
        .values_list(*EXPORT_FIELDS)
        .iterator(chunk_size=batch_size)
    )
    for values in events:
        row = dict(zip(EXPORT_FIELDS, values, strict=True))
        row["created_at"] = row["created_at"].isoformat(timespec="microseconds")
        yield row
