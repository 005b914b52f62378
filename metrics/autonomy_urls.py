from django.urls import path

from metrics import autonomy_views

urlpatterns = [
    path("autonomy/", autonomy_views.autonomy, name="autonomy"),
    path("autonomy/apply", autonomy_views.autonomy_apply_view, name="autonomy_apply"),
    path("autonomy/dismiss", autonomy_views.autonomy_dismiss_view, name="autonomy_dismiss"),
]
