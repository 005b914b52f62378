"""The metrics page's long periods: computed in the background, shown with their time."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from escalations.models import Decision, Verb
from metrics.models import MetricSnapshot
from metrics.queries import MetricFilter, metrics_all
from metrics.snapshots import SNAPSHOT_PERIODS, metric_snapshots_refresh, metrics_for_period
from metrics.tasks import refresh_snapshots
from tests.metrics.conftest import History
from tests.metrics.test_views import recent, signed_in  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def override_rows(client: Client, query: str) -> list[list[str]]:
    body = client.get(f"/metrics/?{query}&export=override_rate").content.decode()
    return list(csv.reader(io.StringIO(body)))[1:]


def test_refresh_stores_each_long_period_for_all_each_task_type_and_each_team(
    recent: History,
) -> None:
    assert refresh_snapshots() == len(SNAPSHOT_PERIODS) * (1 + 2 + 2)
    keys = set(MetricSnapshot.objects.values_list("period", "task_type", "team"))
    for period in SNAPSHOT_PERIODS:
        assert {(period, "", ""), (period, "refund_review", ""), (period, "", "billing")} <= keys
    # Twice is an update, not a second row.
    metric_snapshots_refresh()
    assert MetricSnapshot.objects.count() == len(keys)


def test_a_snapshot_holds_what_the_queries_answer(recent: History) -> None:
    now = timezone.now()
    metric_snapshots_refresh(now=now)
    answer = metrics_for_period(period="90", task_type="refund_review", now=now)
    live = metrics_all(
        MetricFilter(start=now - timedelta(days=90), end=now, task_type="refund_review")
    )
    assert answer.computed_at == now
    assert [(t.key, t.columns, t.rows) for t in answer.tables] == [
        (t.key, t.columns, t.rows) for t in live
    ]


def test_the_page_shows_a_long_period_as_computed_and_says_when(
    recent: History, supervisor: User
) -> None:
    client = signed_in(supervisor)
    metric_snapshots_refresh()
    before = override_rows(client, "period=365")
    assert before[-1] == ["All", "8", "4", "0.5"]  # case 10 too: older than a week
    # A decision changes after the snapshot: the long period shows the snapshot (and says
    # so), the short one is live.
    Decision.objects.filter(final=True, verb=Verb.APPROVE).update(verb=Verb.REJECT)
    assert override_rows(client, "period=365") == before
    page = client.get("/metrics/?period=365").content.decode()
    assert "Computed at" in page and "in the background every 15 minutes" in page
    assert override_rows(client, "period=7")[-1] == ["All", "7", "7", "1.0"]
    assert "Computed at" not in client.get("/metrics/?period=7").content.decode()
    # A task type and a team together have no snapshot: live.
    both = override_rows(client, "period=365&task_type=refund_review&team=billing")
    assert both[-1][-1] == "1.0"  # every approval turned into a reject: all overridden


def test_a_stale_snapshot_is_not_shown(recent: History, supervisor: User) -> None:
    client = signed_in(supervisor)
    long_ago = timezone.now() - timedelta(minutes=2 * settings.BATON_METRICS_SNAPSHOT_MINUTES + 1)
    metric_snapshots_refresh(now=long_ago)
    Decision.objects.filter(final=True, verb=Verb.APPROVE).update(verb=Verb.REJECT)
    assert override_rows(client, "period=365")[-1] == ["All", "8", "8", "1.0"]
    assert "Computed at" not in client.get("/metrics/?period=365").content.decode()
    # The next refresh drops what it did not recompute and is older than that.
    MetricSnapshot.objects.create(
        period="365",
        task_type="",
        team="gone",
        start=long_ago,
        end=long_ago,
        seconds=0,
        tables=[],
    )
    metric_snapshots_refresh()
    assert not MetricSnapshot.objects.filter(team="gone").exists()


def test_beat_recomputes_the_snapshots() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["metric-snapshots"]
    assert entry["task"] == "metrics.refresh_snapshots"
    assert entry["schedule"] == 60.0 * settings.BATON_METRICS_SNAPSHOT_MINUTES
