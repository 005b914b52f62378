"""On PostgreSQL the database itself refuses UPDATE and DELETE of audit rows."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION baton_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS baton_audit_append_only ON escalations_auditevent;
CREATE TRIGGER baton_audit_append_only
    BEFORE UPDATE OR DELETE ON escalations_auditevent
    FOR EACH ROW EXECUTE FUNCTION baton_audit_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS baton_audit_append_only ON escalations_auditevent;
DROP FUNCTION IF EXISTS baton_audit_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # No params: the function body holds a literal "%" that is not a placeholder.
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("escalations", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
