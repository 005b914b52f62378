from django.urls import path
from django.views.generic import RedirectView

from escalations import views_policy as views

INTEGRATION = "integrations/<int:integration_id>"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="policy_task_types"), name="policy"),
    path("task-types/", views.task_types, name="policy_task_types"),
    path("task-types/new", views.task_type_edit, name="policy_task_type_new"),
    path("task-types/<int:task_type_id>/", views.task_type_edit, name="policy_task_type"),
    path("rules/", views.rules, name="policy_rules"),
    path("rules/new", views.rule_edit, name="policy_rule_new"),
    path("rules/<int:rule_id>/", views.rule_edit, name="policy_rule"),
    path("rules/<int:rule_id>/enabled", views.rule_enabled, name="policy_rule_enabled"),
    path("test", views.package_test, name="policy_test"),
    path("sla/", views.sla, name="policy_sla"),
    path("integrations/", views.integrations, name="policy_integrations"),
    path("integrations/add", views.integration_create, name="policy_integration_create"),
    path(f"{INTEGRATION}/rotate", views.integration_rotate, name="policy_integration_rotate"),
    path(f"{INTEGRATION}/secret", views.integration_secret, name="policy_integration_secret"),
    path(f"{INTEGRATION}/webhook", views.integration_webhook, name="policy_integration_webhook"),
    path(f"{INTEGRATION}/active", views.integration_active, name="policy_integration_active"),
    path(
        f"{INTEGRATION}/callbacks/enable",
        views.integration_callback_enable,
        name="policy_integration_callback_enable",
    ),
]
