"""Fill the current PostgreSQL database with generated cases, then time each metric query
and the metrics page. A benchmark that prints figures, not a test (STYLE.md).

    DATABASE_URL=postgres://…/baton_bench manage.py migrate
    DATABASE_URL=postgres://…/baton_bench manage.py bench_metrics --cases 1000000
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, models, transaction
from django.test import Client
from django.utils import timezone

from console.roles import SUPERVISOR, roles_ensure
from escalations.models import Decision, Escalation, Feedback, Integration, TaskType
from escalations.services import integration_create
from metrics.models import EvaluationTally, MetricSnapshot
from metrics.queries import METRICS, MetricFilter
from metrics.snapshots import metric_snapshots_refresh
from routing.models import ReviewerProfile, Team

BATCH = 100_000
DAYS = 365
TASK_TYPES = ["bench_refund", "bench_order", "bench_pricing", "bench_billing", "bench_account"]
TEAMS = ["bench-north", "bench-south", "bench-east"]
REVIEWERS = 30
EDIT_DIFF = (
    '{"draft": ["--- draft", "+++ edited", "@@ -1 +1,2 @@", "-Hi", "+Hello", "+Thanks"],'
    ' "args": {"amount": {"from": 80, "to": 50}}}'
)
# Six trigger mixes, by case id modulo 6.
TRIGGERS = [
    '[{"code": "low_confidence", "level": 2}]',
    '[{"code": "sentiment", "level": 2}]',
    '[{"code": "policy_rule", "rule": "refund_limit", "level": 3}]',
    '[{"code": "agent_requested", "level": 2}]',
    '[{"code": "policy_rule", "rule": "vip_customer", "level": 2},'
    ' {"code": "low_confidence", "level": 2}]',
    "[]",
]
TRIGGER_CODES = [
    " low_confidence ",
    " sentiment ",
    " policy_rule ",
    " agent_requested ",
    " policy_rule low_confidence ",
    "",
]


def _insert_select(model: type[models.Model], exprs: dict[str, str], source: str) -> int:
    """INSERT INTO model (…) SELECT … FROM source: every concrete column gets the SQL in
    `exprs`, else NULL when nullable, else its Python default as a parameter (so columns
    added later do not break the command)."""
    columns, values, params = [], [], []
    for f in model._meta.concrete_fields:
        if f.primary_key:
            continue
        columns.append(connection.ops.quote_name(f.column))
        if f.column in exprs:
            values.append(exprs[f.column].replace("%", "%%"))  # a modulo, not a parameter
        elif f.null:
            values.append("NULL")
        elif f.get_default() is not None:  # a declared default, or "" for text
            values.append("%s")
            params.append(f.get_db_prep_save(f.get_default(), connection))
        else:
            raise CommandError(f"No value for {model.__name__}.{f.column}.")
    table = connection.ops.quote_name(model._meta.db_table)
    source = source.replace("%", "%%")
    sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {source}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _array(ids: list[int]) -> str:
    return "ARRAY[" + ",".join(str(int(i)) for i in ids) + "]::bigint[]"


def _case(values: list[str]) -> str:
    whens = " ".join(f"WHEN {i} THEN '{v}'" for i, v in enumerate(values))
    return f"(CASE g % {len(values)} {whens} END)"


# --- Generation --------------------------------------------------------------------------


def _people() -> tuple[Integration, list[int], list[int]]:
    roles = roles_ensure()
    integration = Integration.objects.filter(name="Bench agent").first()
    if integration is None:
        integration = integration_create(name="Bench agent", callback_url="")[0]
    types = [
        TaskType.objects.get_or_create(slug=s, defaults={"name": s.replace("_", " ")})[0].pk
        for s in TASK_TYPES
    ]
    teams = [Team.objects.get_or_create(slug=s, defaults={"name": s})[0] for s in TEAMS]
    reviewers = []
    for i in range(REVIEWERS):
        user, created = User.objects.get_or_create(username=f"bench-reviewer-{i}")
        if created:
            roles["reviewer"].user_set.add(user)
            ReviewerProfile.objects.create(user=user, team=teams[i % len(teams)])
        reviewers.append(user.pk)
    supervisor, created = User.objects.get_or_create(username="bench-supervisor")
    if created:
        roles[SUPERVISOR].user_set.add(supervisor)
    return integration, types, reviewers


def generate_cases(
    total: int, *, open_share: float = 0.03, write: Callable[[str], Any] = print
) -> None:
    """Insert `total` cases spread over the last year with their decisions and feedback,
    `open_share` of them (at most 0.7, the human share) still queued, in batches of INSERT …
    SELECT; then ANALYZE. Also used by tests/bench/bench_inbox.py and bench_assignment.py."""
    integration, types, reviewers = _people()
    tag = f"bench-{int(time.time())}"
    write(f"Generating {total:,} cases over {DAYS} days ({tag})…")
    started = time.perf_counter()
    for first in range(1, total + 1, BATCH):
        last = min(first + BATCH - 1, total)
        with transaction.atomic():
            _batch(integration, types, reviewers, tag, first, last, total, open_share)
        write(f"  {last:>10,} cases  {time.perf_counter() - started:6.1f} s")
    with transaction.atomic():
        _tallies(integration, types)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    write(f"Generated in {time.perf_counter() - started:.1f} s.")


def _batch(
    integration: Integration,
    types: list[int],
    reviewers: list[int],
    tag: str,
    first: int,
    last: int,
    total: int,
    open_share: float,
) -> None:
    # r1: level and status; r2: seconds to accept; r3: seconds to resolve.
    source = (
        "(SELECT g, random() AS r1, random() AS r2, random() AS r3,"  # noqa: S608
        f" now() - ({total} - g)::float / {total} * interval '{DAYS} days' AS t"
        f" FROM generate_series({first}, {last}) AS g) AS s"
    )
    level = "(CASE WHEN r1 < 0.3 THEN 1 WHEN r1 < 0.9 THEN 2 ELSE 3 END)"
    human = "r1 >= 0.3"
    open_ = f"r1 >= {1 - open_share}"  # still queued (3 % by default)
    accepted = f"CASE WHEN {human} AND NOT {open_} THEN t + r2 * interval '20 minutes' END"
    closed = (
        f"CASE WHEN {human} AND NOT {open_}"
        " THEN t + r2 * interval '20 minutes' + r3 * interval '6 hours'"
        " WHEN NOT " + human + " THEN t END"
    )
    status = (
        f"CASE WHEN NOT {human} THEN 'auto_resolved' WHEN {open_} THEN 'queued' ELSE 'resolved' END"
    )
    due_hours = "(CASE g % 4 WHEN 0 THEN 1 WHEN 1 THEN 4 WHEN 2 THEN 8 ELSE 24 END)"
    exprs = {
        "integration_id": str(integration.pk),
        "external_id": f"'{tag}-' || g",
        "package_sha256": "md5(g::text) || md5(g::text)",
        "package": "'{}'::jsonb",
        "task_type_id": f"({_array(types)})[1 + g % {len(types)}]",
        "task_type_version": "1",
        "summary": "'Generated case ' || g",
        "reason": "'bench'",
        "confidence": "r2",
        "status": status,
        "level": level,
        "priority": "1 + g % 4",
        "triggers": _case(TRIGGERS) + "::jsonb",
        "trigger_codes": _case(TRIGGER_CODES),
        "instruction": f"CASE WHEN {human} THEN 'wait' ELSE 'proceed' END",
        "mode": "'sync'",
        "assignee_id": (
            f"CASE WHEN {human} AND NOT {open_}"
            f" THEN ({_array(reviewers)})[1 + (g * 7) % {len(reviewers)}] END"
        ),
        "accepted_at": accepted,
        "closed_at": closed,
        "escalation_count": f"CASE WHEN {human} AND g % 20 = 0 THEN 1 ELSE 0 END",
        "sla_accept_due": f"CASE WHEN {human} THEN t + interval '15 minutes' END",
        "sla_resolve_due": f"CASE WHEN {human} THEN t + {due_hours} * interval '1 hour' END",
        "sla_breached_at": (
            f"CASE WHEN {human} AND r2 * interval '20 minutes' + r3 * interval '6 hours'"
            f" > {due_hours} * interval '1 hour' THEN t + {due_hours} * interval '1 hour' END"
        ),
        "created_at": "t",
        "updated_at": "t",
    }
    table = Escalation._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")  # noqa: S608
        before = cursor.fetchone()[0]
    _insert_select(Escalation, exprs, source)
    cases = f"{table} AS e WHERE e.id > {before} AND e.status = 'resolved'"
    verb = (
        "(CASE WHEN e.id % 10 < 7 THEN 'approve' WHEN e.id % 10 = 7 THEN 'edit'"
        " WHEN e.id % 10 = 8 THEN 'reject' ELSE 'respond' END)"
    )
    _insert_select(
        Decision,
        {
            "escalation_id": "e.id",
            "reviewer_id": "e.assignee_id",
            "verb": verb,
            "final": "true",
            "case_version": "1",
            "diff": f"CASE WHEN e.id % 10 = 7 THEN '{EDIT_DIFF}'::jsonb ELSE '{{}}'::jsonb END",
            "edit_size": "CASE WHEN e.id % 10 = 7 THEN 4 ELSE 0 END",  # of EDIT_DIFF
            "seconds_to_decide": "(e.id * 7919 % 1200) / 10.0",
            "created_at": "e.closed_at",
        },
        cases,
    )
    _insert_select(
        Feedback,
        {
            "escalation_id": "e.id",
            "csat": "1 + e.id % 5",
            "effort": "1 + e.id % 7",
            "created_at": "e.closed_at",
        },
        cases + " AND e.id % 5 = 0",
    )


def _tallies(integration: Integration, types: list[int]) -> None:
    today = timezone.localdate()
    EvaluationTally.objects.filter(integration=integration).delete()
    EvaluationTally.objects.bulk_create(
        EvaluationTally(
            day=today - timedelta(days=d),
            integration=integration,
            task_type_id=t,
            count=900 + (d * 37 + t) % 200,
        )
        for d in range(DAYS + 1)
        for t in types
    )


class Command(BaseCommand):
    help = "Generate cases on PostgreSQL, then time each metric query and the metrics page."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--cases", type=int, default=100_000)
        parser.add_argument("--repeat", type=int, default=3, help="Timed runs; best is shown.")
        parser.add_argument(
            "--no-generate", action="store_true", help="Time what is already there."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("bench_metrics needs PostgreSQL: set DATABASE_URL=postgres://…")
        if not options["no_generate"]:
            generate_cases(options["cases"], write=self.stdout.write)
        self._time(options["repeat"])

    # --- Timing ------------------------------------------------------------------------------

    def _best(self, run: Callable[[], Any], repeat: int) -> tuple[float, float]:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            run()
            times.append((time.perf_counter() - started) * 1000)
        return times[0], min(times)

    def _time(self, repeat: int) -> None:
        now = timezone.now()
        cases = Escalation.objects.count()
        self.stdout.write(
            f"\n{cases:,} cases, {Decision.objects.count():,} decisions, "
            f"{Feedback.objects.count():,} feedback rows. Times in ms (first run / best of "
            f"{repeat}).\n"
        )
        periods = {"30 days": 30, "365 days": 365}
        filters = {
            label: MetricFilter(start=now - timedelta(days=days), end=now)
            for label, days in periods.items()
        }
        filters["30 d, 1 type"] = MetricFilter(
            start=now - timedelta(days=30), end=now, task_type=TASK_TYPES[0]
        )
        filters["30 d, 1 team"] = MetricFilter(
            start=now - timedelta(days=30), end=now, team=TEAMS[0]
        )
        header = f"{'metric':<20}" + "".join(f"{label:>22}" for label in filters)
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for key, query in METRICS.items():
            cells = []
            for metric_filter in filters.values():
                first, best = self._best(partial(query, metric_filter), repeat)
                cells.append(f"{first:>10.0f} / {best:>7.0f}")
            self.stdout.write(f"{key:<20}" + "".join(f"{c:>22}" for c in cells))
        client = Client(HTTP_HOST="localhost")
        client.force_login(User.objects.get(username="bench-supervisor"))
        pages = {
            "30 days": "/metrics/?period=30",
            "365 days": "/metrics/?period=365",
            "30 d, 1 type": f"/metrics/?period=30&task_type={TASK_TYPES[0]}",
            "30 d, 1 team": f"/metrics/?period=30&team={TEAMS[0]}",
        }
        cells = []
        for url in pages.values():

            def get(url: str = url) -> None:
                response = client.get(url)
                assert response.status_code == 200, response.status_code

            first, best = self._best(get, repeat)
            cells.append(f"{first:>10.0f} / {best:>7.0f}")
        self.stdout.write("-" * len(header))
        self.stdout.write(f"{'whole page (live)':<20}" + "".join(f"{c:>22}" for c in cells))
        self._time_snapshots(client, repeat)

    def _time_snapshots(self, client: Client, repeat: int) -> None:
        """The long periods as the page serves them: from snapshots that beat computes."""
        MetricSnapshot.objects.all().delete()
        started = time.perf_counter()
        count = metric_snapshots_refresh()
        refresh = time.perf_counter() - started
        self.stdout.write(
            f"\nSnapshots (beat, every {settings.BATON_METRICS_SNAPSHOT_MINUTES} min): "
            f"{count} computed in {refresh:.1f} s."
        )
        for url in (
            "/metrics/",
            "/metrics/?period=90",
            "/metrics/?period=365",
            f"/metrics/?period=365&task_type={TASK_TYPES[0]}",
            f"/metrics/?period=365&team={TEAMS[0]}",
        ):

            def get(url: str = url) -> None:
                response = client.get(url)
                assert response.status_code == 200, response.status_code
                assert b"Computed at" in response.content, "not served from a snapshot"

            first, best = self._best(get, repeat)
            self.stdout.write(f"  {url:<52} {first:>6.0f} / {best:>5.0f} ms")
