"""The metrics page through real requests: who may see it, its filters, its CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db.models import F
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from escalations.models import Escalation, TaskType
from metrics.models import EvaluationTally
from metrics.queries import DEFINITIONS
from tests.conftest import load_fixture, post_json
from tests.metrics.conftest import T0, History

pytestmark = pytest.mark.django_db


@pytest.fixture
def recent(history: History) -> History:
    """The history moved so that T0 was three days ago: all of it but case 10 falls in the
    last seven days."""
    shift = timezone.now() - timedelta(days=3) - T0
    Escalation.objects.update(created_at=F("created_at") + shift)
    EvaluationTally.objects.update(day=F("day") + timedelta(days=shift.days))
    return history


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_reviewers_are_refused_and_strangers_sent_to_sign_in(reviewer: User) -> None:
    assert signed_in(reviewer).get("/metrics/").status_code == 403
    assert signed_in(reviewer).get("/metrics/?export=override_rate").status_code == 403
    response = Client().get("/metrics/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_supervisors_see_every_metric_with_its_definition(recent: History, supervisor: User):
    client = signed_in(supervisor)
    page = client.get("/metrics/?period=7").content.decode()
    assert 'href="/metrics/"' in page  # the top bar's link
    for key, definition in DEFINITIONS.items():
        assert f'id="metric-{key}"' in page
        assert f"<p>{escape(definition)}</p>" in page, key
        assert f"export={key}" in page
        assert f'id="{key}-chart"' in page  # the chart's data
    assert "static/vendor/chartjs/chart.umd.min.js" in page
    assert "57.1%" in page  # override rate, all task types: 4 of 7


def test_reviewers_do_not_get_the_link(reviewer: User) -> None:
    assert 'href="/metrics/"' not in signed_in(reviewer).get("/").content.decode()


def test_csv_export_of_a_table(recent: History, supervisor: User) -> None:
    response = signed_in(supervisor).get("/metrics/?period=7&export=override_rate")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    assert list(csv.reader(io.StringIO(response.content.decode()))) == [
        ["Task type", "Final decisions", "Overridden", "Override rate"],
        ["Order status", "3", "2", "0.6667"],
        ["Refund review", "4", "2", "0.5"],
        ["All", "7", "4", "0.5714"],
    ]


def test_csv_cells_that_look_like_formulas_are_quoted(recent: History, supervisor: User) -> None:
    TaskType.objects.filter(slug="order_status").update(name='=HYPERLINK("http://x","y")')
    response = signed_in(supervisor).get("/metrics/?period=7&export=override_rate")
    labels = [row[0] for row in csv.reader(io.StringIO(response.content.decode()))]
    assert labels == ["Task type", '\'=HYPERLINK("http://x","y")', "Refund review", "All"]


def test_every_table_exports(recent: History, supervisor: User) -> None:
    client = signed_in(supervisor)
    for key in DEFINITIONS:
        response = client.get(f"/metrics/?export={key}")
        assert response.status_code == 200, key
        assert len(response.content.decode().splitlines()) >= 2, key
    assert client.get("/metrics/?export=nonsense").status_code == 404


def test_filters_by_task_type_team_and_period(recent: History, supervisor: User) -> None:
    client = signed_in(supervisor)

    def rows(query: str) -> list[list[str]]:
        body = client.get(f"/metrics/?{query}&export=override_rate").content.decode()
        return list(csv.reader(io.StringIO(body)))[1:]

    assert rows("period=7&task_type=refund_review") == [
        ["Refund review", "4", "2", "0.5"],
        ["All", "4", "2", "0.5"],
    ]
    assert rows("period=7&team=billing")[-1] == ["All", "3", "1", "0.3333"]
    assert rows("period=30")[-1] == ["All", "8", "4", "0.5"]  # case 10 too
    assert rows("period=bogus")[-1] == ["All", "8", "4", "0.5"]  # the default, 30 days
    page = client.get("/metrics/?period=7&task_type=refund_review&team=billing").content.decode()
    assert '<option value="refund_review" selected>' in page
    assert '<option value="billing" selected>' in page


def test_evaluate_counts_the_call_and_nothing_else(
    api_client: Client, task_types: dict[str, TaskType]
) -> None:
    package = load_fixture("order_status_l1")
    package.pop("external_id")
    for _ in range(3):
        assert post_json(api_client, "/evaluate", package).status_code == 200
    tally = EvaluationTally.objects.get()
    assert (tally.task_type.slug, tally.count, tally.day) == (
        "order_status",
        3,
        timezone.localdate(),
    )
    assert not Escalation.objects.exists()
