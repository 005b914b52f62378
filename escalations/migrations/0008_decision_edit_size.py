"""Decision.edit_size: stored when the edit is made (escalations.decisions.edit_size), so the
edit-size metric sums a column instead of taking every edit's diff JSON apart. Existing
edits are filled here, in SQL, by the same rule: draft lines starting with - or + less the
two header lines, plus the action arguments changed."""

from django.db import migrations, models

FILL = {
    "postgresql": """
        UPDATE escalations_decision SET edit_size =
            (SELECT count(*) FROM jsonb_array_elements_text(COALESCE(diff -> 'draft', '[]'))
             AS line WHERE left(line, 1) IN ('-', '+'))
            - CASE WHEN jsonb_array_length(COALESCE(diff -> 'draft', '[]')) > 0
              THEN 2 ELSE 0 END
            + (SELECT count(*) FROM jsonb_object_keys(COALESCE(diff -> 'args', '{}')))
        WHERE verb = 'edit' AND jsonb_typeof(diff) = 'object'
    """,
    "sqlite": """
        UPDATE escalations_decision SET edit_size =
            (SELECT count(*) FROM json_each(diff, '$.draft')
             WHERE substr(value, 1, 1) IN ('-', '+'))
            - CASE WHEN json_array_length(diff, '$.draft') > 0 THEN 2 ELSE 0 END
            + (SELECT count(*) FROM json_each(diff, '$.args'))
        WHERE verb = 'edit'
    """,
}


def fill(apps, schema_editor):
    schema_editor.execute(FILL[schema_editor.connection.vendor])


class Migration(migrations.Migration):
    dependencies = [
        ("escalations", "0007_skill_codes"),
    ]

    operations = [
        migrations.AddField(
            model_name="decision",
            name="edit_size",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Of an edit: draft lines added or removed plus arguments changed.",
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
    ]
