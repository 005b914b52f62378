"""Indexes the metric queries read (found with EXPLAIN on a million generated cases).

They live here, beside the queries that need them, and as SQL because PostgreSQL's
covering indexes (INCLUDE) let the aggregations read the index alone instead of the wide
case rows (the package, transcript fields). SQLite gets the same keys without INCLUDE.
"""

from django.db import migrations

# Cases by arrival, carrying every column a case metric groups or filters on.
CASE_COLUMNS = (
    "task_type_id, status, level, priority, escalation_count, assignee_id, accepted_at,"
    " closed_at, sla_resolve_due, sla_breached_at"
)
# Final decisions by time: a decision comes after its case arrived, so the period's lower
# bound also bounds the decisions, and the rest of a decision metric is in the index.
DECISION_COLUMNS = "escalation_id, verb, seconds_to_decide, reviewer_id"

POSTGRES = [
    f"CREATE INDEX IF NOT EXISTS metrics_case_arrival ON escalations_escalation (created_at)"
    f" INCLUDE ({CASE_COLUMNS})",
    f"CREATE INDEX IF NOT EXISTS metrics_final_decision ON escalations_decision (created_at)"
    f" INCLUDE ({DECISION_COLUMNS}) WHERE final",
]
SQLITE = [
    "CREATE INDEX IF NOT EXISTS metrics_final_decision ON escalations_decision (created_at)"
    " WHERE final",
]
DROP = ["DROP INDEX IF EXISTS metrics_case_arrival", "DROP INDEX IF EXISTS metrics_final_decision"]


def create(apps, schema_editor):
    for sql in POSTGRES if schema_editor.connection.vendor == "postgresql" else SQLITE:
        schema_editor.execute(sql)


def drop(apps, schema_editor):
    for sql in DROP:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0001_initial"),
        ("escalations", "0007_skill_codes"),
    ]

    operations = [migrations.RunPython(create, drop)]
