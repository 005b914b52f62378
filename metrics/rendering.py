"""Metric tables as the page and the CSV show them: figures formatted, charts described."""

from __future__ import annotations

import csv
import io
from typing import Any

from metrics.queries import TOTAL, Column, MetricTable


def _seconds_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def cell_text(value: Any, kind: str) -> str:
    if value is None:
        return "–"  # noqa: RUF001 (an en dash: no figure)
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "seconds":
        return _seconds_text(value)
    if kind == "number":
        return f"{value:.2f}"
    if kind == "count":
        return f"{value:,}"
    return str(value)


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"); names in the tables are typed by people, so text cells are quoted.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell_raw(value: Any, kind: str) -> Any:
    """The CSV's figure: rates as fractions, durations in seconds, no thousands separators;
    text that a spreadsheet would take for a formula is prefixed with an apostrophe."""
    if value is None:
        return ""
    if kind in ("rate", "number"):
        return round(value, 4)
    if kind == "seconds":
        return round(value, 1)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _chart(table: MetricTable, column: Column) -> dict[str, Any]:
    rows = [r for r in table.rows if r[table.label] != TOTAL]
    return {
        "label": column.label,
        "kind": column.kind,
        "labels": [str(r[table.label]) for r in rows],
        "values": [r[column.key] for r in rows],
    }


def table_view(table: MetricTable) -> dict[str, Any]:
    chart_column = next(c for c in table.columns if c.key == table.chart)
    return {
        "key": table.key,
        "title": table.title,
        "definition": table.definition,
        "columns": table.columns,
        "rows": [
            {
                "total": row[table.label] == TOTAL,
                "cells": [
                    {"text": cell_text(row.get(c.key), c.kind), "num": c.kind != "text"}
                    for c in table.columns
                ],
            }
            for row in table.rows
        ],
        "chart": _chart(table, chart_column),
        "chart_id": f"{table.key}-chart",
    }


def table_csv(table: MetricTable) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.label for c in table.columns])
    for row in table.rows:
        writer.writerow([cell_raw(row.get(c.key), c.kind) for c in table.columns])
    return out.getvalue()
