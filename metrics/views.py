"""The metrics page (supervisors and admins). Thin: parse the filters, run the queries,
render or export."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from escalations.models import TaskType
from metrics import rendering
from metrics.queries import METRICS, MetricFilter, metrics_all
from routing.models import Team

supervisors = permission_required("escalations.view_all_escalations", raise_exception=True)
DEFAULT_PERIOD = "30"


def _filter(request: HttpRequest) -> tuple[MetricFilter, str]:
    period = request.GET.get("period", DEFAULT_PERIOD)
    if period not in rendering.PERIODS:
        period = DEFAULT_PERIOD
    end = timezone.now()
    return (
        MetricFilter(
            start=end - rendering.PERIODS[period],
            end=end,
            task_type=request.GET.get("task_type") or None,
            team=request.GET.get("team") or None,
        ),
        period,
    )


@require_GET
@login_required
@supervisors
def metrics_page(request: HttpRequest) -> HttpResponse:
    metric_filter, period = _filter(request)
    export = request.GET.get("export")
    if export is not None:
        if export not in METRICS:
            raise Http404("No such metric.")
        table = METRICS[export](metric_filter)
        response = HttpResponse(rendering.table_csv(table), content_type="text/csv")
        filename = f"baton-{export}-{metric_filter.start:%Y%m%d}-{metric_filter.end:%Y%m%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    tables = [rendering.table_view(table) for table in metrics_all(metric_filter)]
    context = {
        "section": "metrics",
        "tables": tables,
        "filter": metric_filter,
        "period": period,
        "periods": list(rendering.PERIODS),
        "task_types": TaskType.objects.order_by("name").values("slug", "name"),
        "teams": Team.objects.order_by("name").values("slug", "name"),
        "query": request.GET.urlencode(),
    }
    return render(request, "metrics/metrics.html", context)
