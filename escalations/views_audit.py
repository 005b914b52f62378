"""The audit page for a regulator (DESIGN §9): read, verify, export. Supervisors and admins
(`escalations.view_audit`), checked here on every view. Thin: parse, call, render."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from escalations.audit import (
    EXPORT_FIELDS,
    AuditFilters,
    audit_export_rows,
    audit_page,
    audit_verbs,
    audit_verify,
    canonical_json,
)

view_audit = permission_required("escalations.view_audit", raise_exception=True)


def _page_context(request: HttpRequest) -> dict[str, Any]:
    filters = AuditFilters.from_query(request.GET)
    before_raw = request.GET.get("before") or ""
    before = int(before_raw) if before_raw.isdigit() else None
    return {
        "filters": filters,
        "page": audit_page(filters=filters, before=before),
        "before": before,
        "verbs": audit_verbs(),
        "section": "audit",
    }


@require_GET
@login_required
@view_audit
def audit(request: HttpRequest) -> HttpResponse:
    return render(request, "audit/audit.html", _page_context(request))


@require_POST
@login_required
@view_audit
def audit_verify_view(request: HttpRequest) -> HttpResponse:
    """Walk the whole chain now and show the outcome above the (filtered) list."""
    checked, first_break = audit_verify()
    context = {**_page_context(request), "verified": {"count": checked, "first": first_break}}
    template = "audit/audit.html"
    if getattr(request, "htmx", False):
        template += "#verify"
    return render(request, template, context)


class _Echo:
    """csv.writer writes to this and we yield what it wrote (Django's streaming CSV recipe)."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for row in rows:
        # Cells as stored (data as canonical JSON), so every row can be re-hashed; the
        # export is evidence, not a spreadsheet to be opened and edited.
        yield writer.writerow(
            [canonical_json(row[f]) if f == "data" else row[f] for f in EXPORT_FIELDS]
        )


def _jsonl_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"


@require_GET
@login_required
@view_audit
def audit_export(request: HttpRequest, fmt: str) -> StreamingHttpResponse:
    rows = audit_export_rows(filters=AuditFilters.from_query(request.GET))
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(
            _jsonl_lines(rows), content_type="application/x-ndjson; charset=utf-8"
        )
    response["Content-Disposition"] = f'attachment; filename="baton-audit-{stamp}.{fmt}"'
    return response
