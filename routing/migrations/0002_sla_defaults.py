from django.db import migrations

# P1 critical … P4 low: (accept, resolve) in seconds; admins edit them in the console.
DEFAULTS = {1: (2 * 60, 15 * 60), 2: (10 * 60, 60 * 60), 3: (30 * 60, 4 * 3600), 4: (2 * 3600, 24 * 3600)}


def forwards(apps, schema_editor):
    SlaTarget = apps.get_model("routing", "SlaTarget")
    for priority, (accept, resolve) in DEFAULTS.items():
        SlaTarget.objects.get_or_create(
            priority=priority, defaults={"accept_seconds": accept, "resolve_seconds": resolve}
        )


class Migration(migrations.Migration):
    dependencies = [("routing", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
