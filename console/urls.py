from django.contrib import admin
from django.urls import path

from console import views
from escalations.api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.BatonLoginView.as_view(), name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("cases/<int:escalation_id>/", views.case_detail, name="case_detail"),
    path("healthz", views.healthz, name="healthz"),
    path("api/v1/", api.urls),
    path("django-admin/", admin.site.urls),
]
