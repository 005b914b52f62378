"""Indexes the metric queries read (found with EXPLAIN on a million generated cases).

They live here, beside the queries that need them, and as SQL because PostgreSQL's
covering index (INCLUDE) lets the decision aggregations read the index alone. SQLite gets
the same key without INCLUDE. Case metrics already use the arrival index on created_at
(a covering variant was not chosen by the planner, so there is none).
"""

from django.db import migrations

# Final decisions by time: a decision comes after its case arrived, so the period's lower
# bound also bounds the decisions, and the rest of a decision metric is in the index.
DECISION_COLUMNS = "escalation_id, verb, seconds_to_decide, reviewer_id"

POSTGRES = [
    f"CREATE INDEX IF NOT EXISTS metrics_final_decision ON escalations_decision (created_at)"
    f" INCLUDE ({DECISION_COLUMNS}) WHERE final",
]
SQLITE = [
    "CREATE INDEX IF NOT EXISTS metrics_final_decision ON escalations_decision (created_at)"
    " WHERE final",
]
DROP = ["DROP INDEX IF EXISTS metrics_final_decision"]


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
