"""The metrics page (supervisors and admins). Thin: parse the filters, run the queries,
render or export."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from escalations.models import TaskType
from metrics import rendering
from metrics.queries import METRICS
from metrics.snapshots import PERIODS, metrics_for_period
from routing.models import Team

supervisors = permission_required("escalations.view_all_escalations", raise_exception=True)
DEFAULT_PERIOD = "30"


@require_GET
@login_required
@supervisors
def metrics_page(request: HttpRequest) -> HttpResponse:
    period = request.GET.get("period", DEFAULT_PERIOD)
    if period not in PERIODS:
        period = DEFAULT_PERIOD
    export = request.GET.get("export")
    if export is not None and export not in METRICS:
        raise Http404("No such metric.")
    answer = metrics_for_period(
        period=period,
        task_type=request.GET.get("task_type") or None,
        team=request.GET.get("team") or None,
        only=export,
    )
    metric_filter = answer.filter
    if export is not None:
        response = HttpResponse(rendering.table_csv(answer.tables[0]), content_type="text/csv")
        filename = f"baton-{export}-{metric_filter.start:%Y%m%d}-{metric_filter.end:%Y%m%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    context = {
        "section": "metrics",
        "tables": [rendering.table_view(table) for table in answer.tables],
        "filter": metric_filter,
        "computed_at": answer.computed_at,
        "snapshot_minutes": settings.BATON_METRICS_SNAPSHOT_MINUTES,
        "period": period,
        "periods": list(PERIODS),
        "task_types": TaskType.objects.order_by("name").values("slug", "name"),
        "teams": Team.objects.order_by("name").values("slug", "name"),
        "query": request.GET.urlencode(),
    }
    return render(request, "metrics/metrics.html", context)
