"""The final-decision index also covers Decision.edit_size, so the edit rate and size read
the index alone, as the override rate does (EXPLAIN on a million cases)."""

from django.db import migrations

COLUMNS = "escalation_id, verb, seconds_to_decide, reviewer_id"
OLD = (
    f"CREATE INDEX metrics_final_decision ON escalations_decision (created_at)"
    f" INCLUDE ({COLUMNS}) WHERE final"
)
NEW = (
    f"CREATE INDEX metrics_final_decision ON escalations_decision (created_at)"
    f" INCLUDE ({COLUMNS}, edit_size) WHERE final"
)
DROP = "DROP INDEX IF EXISTS metrics_final_decision"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # SQLite's index has no INCLUDE
        schema_editor.execute(DROP)
        schema_editor.execute(NEW)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)
        schema_editor.execute(OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0002_metric_indexes"),
        ("escalations", "0008_decision_edit_size"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
