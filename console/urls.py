from django.contrib import admin
from django.urls import include, path

from console import views
from escalations.api import api

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("login/", views.BatonLoginView.as_view(), name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("cases/<int:escalation_id>/", views.case_detail, name="case_detail"),
    path("cases/<int:escalation_id>/accept", views.case_accept, name="case_accept"),
    path("cases/<int:escalation_id>/decide", views.case_decide, name="case_decide"),
    path("healthz", views.healthz, name="healthz"),
    path("", include("routing.urls")),  # presence, roster, coverage, the supervisor board
    path("", include("escalations.urls_audit")),  # the audit trail: read, verify, export
    path("policy/", include("escalations.urls_policy")),  # admins: task types, rules, SLA, agents
    path("", include("metrics.autonomy_urls")),  # earned autonomy: recommendations
    path("metrics/", include("metrics.urls")),  # DESIGN §10, supervisors and admins
    path("api/v1/", api.urls),
    path("django-admin/", admin.site.urls),
]
