from django.urls import path

from escalations import views_audit

urlpatterns = [
    path("audit/", views_audit.audit, name="audit"),
    path("audit/verify", views_audit.audit_verify_view, name="audit_verify"),
    path("audit/export.csv", views_audit.audit_export, {"fmt": "csv"}, name="audit_export_csv"),
    path(
        "audit/export.jsonl", views_audit.audit_export, {"fmt": "jsonl"}, name="audit_export_jsonl"
    ),
]
