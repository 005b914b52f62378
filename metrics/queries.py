"""The metrics of DESIGN §10, each one SQL aggregation over the stored facts.

Every metric is a function of a `MetricFilter` that returns a `MetricTable`: a few grouped
rows (by task type, band, trigger or reviewer) and, where the figures add up, an "All" row.
Nothing here loops over cases in Python; the loops are over the handful of groups.

The period is the case's arrival (`created_at`), so every table describes the same cohort
of cases. The team is the team of the person who holds or held the case (case metrics) or
who made the decision (decision metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from math import ceil, floor
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    Count,
    F,
    FilteredRelation,
    FloatField,
    Func,
    Q,
    QuerySet,
    Sum,
)
from django.utils import timezone

from escalations.models import Decision, Escalation, Feedback, Status, TaskType, Verb
from metrics.models import EvaluationTally

QUICK_SECONDS = 10  # an approval faster than this is a glance, not a review

DEFINITIONS = {
    "override_rate": (
        "Share of final decisions that were anything other than an unchanged approve "
        "(edit, reject, respond, take over, reverse)."
    ),
    "edit_rate": (
        "Share of final decisions that edited the agent's proposal, and the average edit size: "
        "draft lines added or removed plus action arguments changed."
    ),
    "re_escalation_rate": (
        "Share of cases handed to people (level L2 or above) that a reviewer escalated "
        "further at least once."
    ),
    "handoff_rate": (
        "Per task type, the cases handed to people (L2 or above) against all cases the agents "
        "sent, and the cases sent against the times agents asked /evaluate."
    ),
    "time_to_accept": (
        "Median and 90th percentile of the time from a case's arrival to a reviewer "
        "accepting it (the latest acceptance when it was re-escalated)."
    ),
    "time_to_resolve": (
        "Median and 90th percentile of the time from a case's arrival to its final "
        "decision, over resolved cases."
    ),
    "sla_attainment": (
        "Per priority band, the share of cases with a resolve target that were resolved by "
        "it; a case still open past its target counts as missed, one not yet due is left out."
    ),
    "satisfaction": (
        "Average customer satisfaction (CSAT, 1-5) and customer effort (1-7, lower is "
        "better) reported after a handoff."
    ),
    "triggers": (
        "How often each trigger fired (each policy rule on its own line) and how its cases "
        "ended: auto-resolved, approved unchanged or overridden by a reviewer."
    ),
    "reviewers": (
        "Per reviewer, the final decisions they made, the share that overrode the agent and "
        "their average time to decide."
    ),
    "quick_approvals": (
        f"Share of final decisions that approved the proposal unchanged within "
        f"{QUICK_SECONDS} seconds of taking the case: a sign the agent escalates needlessly."
    ),
}


@dataclass(frozen=True)
class MetricFilter:
    start: datetime
    end: datetime
    task_type: str | None = None
    team: str | None = None


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "count"  # text, count, rate (0..1), seconds, number


@dataclass
class MetricTable:
    key: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    chart: str  # the column drawn beside the table
    label: str = "label"  # the column naming each bar
    definition: str = field(init=False)

    def __post_init__(self) -> None:
        self.definition = DEFINITIONS[self.key]

    def row(self, label: str) -> dict[str, Any]:
        """The row with this label (tests and the CSV read rows by their label)."""
        return next(r for r in self.rows if r[self.label] == label)


TOTAL = "All"


# --- SQL building blocks ---------------------------------------------------------------------


class Seconds(Func):
    """Seconds from the second expression to the first (`end - start`)."""

    output_field = FloatField()
    arity = 2

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="EXTRACT(EPOCH FROM (%(expressions)s))::double precision",
            arg_joiner=" - ",
            **extra,
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra,
        )


def _rate(part: float | None, whole: float | None) -> float | None:
    return None if not whole else (part or 0) / whole


def _mean(total: float | None, n: int | None) -> float | None:
    return None if not n else (total or 0) / n


# --- The cohorts -----------------------------------------------------------------------------


def cases(f: MetricFilter) -> QuerySet[Escalation]:
    """Cases that arrived in the period, of the task type, held by the team."""
    return Escalation.objects.filter(_case_q(f, "")).order_by()


def _case_q(f: MetricFilter, prefix: str) -> Q:
    q = Q(**{f"{prefix}created_at__gte": f.start, f"{prefix}created_at__lt": f.end})
    if f.task_type:
        q &= Q(**{f"{prefix}task_type__slug": f.task_type})
    if f.team:
        q &= Q(**{f"{prefix}assignee__reviewer_profile__team__slug": f.team})
    return q


def final_decisions(f: MetricFilter) -> QuerySet[Decision]:
    """Final decisions on the period's cases of the task type, made by the team."""
    q = Q(final=True, escalation__created_at__gte=f.start, escalation__created_at__lt=f.end)
    # Implied (a case is decided after it arrives) but lets the decision index bound the scan.
    q &= Q(created_at__gte=f.start)
    if f.task_type:
        q &= Q(escalation__task_type__slug=f.task_type)
    if f.team:
        q &= Q(reviewer__reviewer_profile__team__slug=f.team)
    return Decision.objects.filter(q).order_by()


def _by_task_type(
    qs: QuerySet[Any], prefix: str, aggregates: dict[str, Any]
) -> list[dict[str, Any]]:
    rows = (
        qs.values(label=F(f"{prefix}task_type__name"))
        .annotate(**aggregates)
        .order_by(f"{prefix}task_type__name")
    )
    return list(rows)


def _with_total(rows: list[dict[str, Any]], keys: Iterable[str]) -> list[dict[str, Any]]:
    """The rows and an "All" row summing the additive columns."""
    total = {"label": TOTAL, **{k: sum(r[k] or 0 for r in rows) for k in keys}}
    return [*rows, total]


def _finish(rows: list[dict[str, Any]], derive: Callable[[dict[str, Any]], None]) -> None:
    for row in rows:
        derive(row)


NOT_APPROVE = ~Q(verb=Verb.APPROVE)


# --- Decision metrics ------------------------------------------------------------------------


def override_rate(f: MetricFilter) -> MetricTable:
    rows = _by_task_type(
        final_decisions(f),
        "escalation__",
        {"decisions": Count("id"), "overridden": Count("id", filter=NOT_APPROVE)},
    )
    rows = _with_total(rows, ["decisions", "overridden"])
    _finish(rows, lambda r: r.update(rate=_rate(r["overridden"], r["decisions"])))
    return MetricTable(
        key="override_rate",
        title="Override rate",
        columns=[
            Column("label", "Task type", "text"),
            Column("decisions", "Final decisions"),
            Column("overridden", "Overridden"),
            Column("rate", "Override rate", "rate"),
        ],
        rows=rows,
        chart="rate",
    )


def edit_rate(f: MetricFilter) -> MetricTable:
    edited = Q(verb=Verb.EDIT)
    rows = _by_task_type(
        final_decisions(f),
        "escalation__",
        {
            "decisions": Count("id"),
            "edits": Count("id", filter=edited),
            "lines": Sum("edit_size", filter=edited),
        },
    )
    rows = _with_total(rows, ["decisions", "edits", "lines"])
    _finish(
        rows,
        lambda r: r.update(
            rate=_rate(r["edits"], r["decisions"]), size=_mean(r["lines"], r["edits"])
        ),
    )
    return MetricTable(
        key="edit_rate",
        title="Edit rate and edit size",
        columns=[
            Column("label", "Task type", "text"),
            Column("decisions", "Final decisions"),
            Column("edits", "Edits"),
            Column("rate", "Edit rate", "rate"),
            Column("size", "Average edit size (lines)", "number"),
        ],
        rows=rows,
        chart="rate",
    )


def reviewers(f: MetricFilter) -> MetricTable:
    days = max((f.end - f.start) / timedelta(days=1), 1e-9)
    grouped = (
        final_decisions(f)
        .values(
            "reviewer_id",
            username=F("reviewer__username"),
            first_name=F("reviewer__first_name"),
            last_name=F("reviewer__last_name"),
            team=F("reviewer__reviewer_profile__team__name"),
        )
        .annotate(
            decisions=Count("id"),
            overridden=Count("id", filter=NOT_APPROVE),
            timed=Count("seconds_to_decide"),
            seconds=Sum("seconds_to_decide"),
        )
        .order_by("-decisions", "username")
    )
    rows = []
    for r in grouped:
        name = f"{r['first_name']} {r['last_name']}".strip() or r["username"]
        rows.append({**r, "label": name, "team": r["team"] or ""})
    rows = _with_total(rows, ["decisions", "overridden", "timed", "seconds"])
    rows[-1]["team"] = ""

    def derive(r: dict[str, Any]) -> None:
        r.update(
            per_day=r["decisions"] / days,
            rate=_rate(r["overridden"], r["decisions"]),
            avg_seconds=_mean(r["seconds"], r["timed"]),
        )

    _finish(rows, derive)
    return MetricTable(
        key="reviewers",
        title="Reviewers: throughput and overrides",
        columns=[
            Column("label", "Reviewer", "text"),
            Column("team", "Team", "text"),
            Column("decisions", "Final decisions"),
            Column("per_day", "Per day", "number"),
            Column("overridden", "Overridden"),
            Column("rate", "Override rate", "rate"),
            Column("avg_seconds", "Average time to decide", "seconds"),
        ],
        rows=rows,
        chart="decisions",
    )


def quick_approvals(f: MetricFilter) -> MetricTable:
    quick = Q(verb=Verb.APPROVE, seconds_to_decide__lt=QUICK_SECONDS)
    rows = _by_task_type(
        final_decisions(f),
        "escalation__",
        {"decisions": Count("id"), "quick": Count("id", filter=quick)},
    )
    rows = _with_total(rows, ["decisions", "quick"])
    _finish(rows, lambda r: r.update(rate=_rate(r["quick"], r["decisions"])))
    return MetricTable(
        key="quick_approvals",
        title=f"Approved unchanged within {QUICK_SECONDS} seconds",
        columns=[
            Column("label", "Task type", "text"),
            Column("decisions", "Final decisions"),
            Column("quick", f"Approved in < {QUICK_SECONDS} s"),
            Column("rate", "Share", "rate"),
        ],
        rows=rows,
        chart="rate",
    )


# --- Case metrics ----------------------------------------------------------------------------

TO_PEOPLE = Q(level__gte=2)


def re_escalation_rate(f: MetricFilter) -> MetricTable:
    rows = _by_task_type(
        cases(f).filter(TO_PEOPLE),
        "",
        {"cases": Count("id"), "re_escalated": Count("id", filter=Q(escalation_count__gt=0))},
    )
    rows = _with_total(rows, ["cases", "re_escalated"])
    _finish(rows, lambda r: r.update(rate=_rate(r["re_escalated"], r["cases"])))
    return MetricTable(
        key="re_escalation_rate",
        title="Re-escalation rate",
        columns=[
            Column("label", "Task type", "text"),
            Column("cases", "Cases handed to people"),
            Column("re_escalated", "Re-escalated"),
            Column("rate", "Re-escalation rate", "rate"),
        ],
        rows=rows,
        chart="rate",
    )


def _evaluations(f: MetricFilter) -> dict[str, int]:
    """Asked /evaluate per task type name, over the days of the period (no team: an
    evaluation belongs to no one)."""
    last = f.end - timedelta(microseconds=1)
    qs = EvaluationTally.objects.filter(
        day__gte=timezone.localdate(f.start), day__lte=timezone.localdate(last)
    )
    if f.task_type:
        qs = qs.filter(task_type__slug=f.task_type)
    grouped = qs.values(name=F("task_type__name")).annotate(n=Sum("count")).order_by()
    return {r["name"]: r["n"] for r in grouped}


def handoff_rate(f: MetricFilter) -> MetricTable:
    rows = _by_task_type(
        cases(f),
        "",
        {
            "sent": Count("id"),
            "to_people": Count("id", filter=TO_PEOPLE),
            "auto_resolved": Count("id", filter=Q(status=Status.AUTO_RESOLVED)),
        },
    )
    evaluated = {} if f.team else _evaluations(f)
    for row in rows:
        row["evaluated"] = evaluated.pop(row["label"], 0)
    rows += [
        {"label": name, "sent": 0, "to_people": 0, "auto_resolved": 0, "evaluated": n}
        for name, n in sorted(evaluated.items())
    ]
    rows = _with_total(rows, ["sent", "to_people", "auto_resolved", "evaluated"])
    _finish(
        rows,
        lambda r: r.update(
            rate=_rate(r["to_people"], r["sent"]), sent_rate=_rate(r["sent"], r["evaluated"])
        ),
    )
    return MetricTable(
        key="handoff_rate",
        title="Handoff rate by task type",
        columns=[
            Column("label", "Task type", "text"),
            Column("evaluated", "Asked /evaluate"),
            Column("sent", "Cases sent"),
            Column("sent_rate", "Sent per evaluation", "rate"),
            Column("auto_resolved", "Auto-resolved"),
            Column("to_people", "Handed to people"),
            Column("rate", "Handoff rate", "rate"),
        ],
        rows=rows,
        chart="rate",
    )


def _percentiles_ordered(
    qs: QuerySet[Any], value: Any, n: int, fractions: Sequence[float]
) -> list[float | None]:
    """percentile_cont by ordered offsets: two rows read per fraction, never all of them."""
    ordered = qs.annotate(_v=value).order_by("_v").values_list("_v", flat=True)
    out: list[float | None] = []
    for fraction in fractions:
        if not n:
            out.append(None)
            continue
        position = fraction * (n - 1)
        low, high = floor(position), ceil(position)
        pair = list(ordered[low : high + 1])
        out.append(pair[0] + (pair[-1] - pair[0]) * (position - low))
    return out


FRACTIONS = (0.5, 0.9)


def _percentiles_rollup(qs: QuerySet[Any], value: Any, names: list[str]) -> list[dict[str, Any]]:
    """percentile_cont per task type and for "All" in one pass (PostgreSQL): GROUP BY ROLLUP
    reads and sorts the period's cases once for both, where a grouped query and an aggregate
    read them twice. Grouped by the task type's id, named afterwards."""
    inner_sql, params = qs.annotate(_v=value).values("task_type_id", "_v").query.sql_with_params()
    pct = ", ".join(f"percentile_cont({x!r}) WITHIN GROUP (ORDER BY c._v)" for x in FRACTIONS)
    sql = f"""
        SELECT GROUPING(c.task_type_id), c.task_type_id, count(*), {pct}
        FROM ({inner_sql}) AS c
        GROUP BY ROLLUP (c.task_type_id)
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    by_type = {r[1]: r for r in fetched if not r[0]}
    total = next(r for r in fetched if r[0])  # the empty grouping set: always one row
    named = TaskType.objects.filter(pk__in=by_type).order_by("name").values_list("pk", "name")
    return [
        *({"label": name, **_figures(by_type[pk], names)} for pk, name in named),
        {"label": TOTAL, **_figures(total, names)},
    ]


def _figures(row: tuple[Any, ...], names: list[str]) -> dict[str, Any]:
    return {"cases": row[2], **dict(zip(names, row[3:], strict=True))}


def _duration_table(
    f: MetricFilter, *, key: str, title: str, end_field: str, only: Q
) -> MetricTable:
    qs = cases(f).filter(only, **{f"{end_field}__isnull": False})
    value = Seconds(F(end_field), F("created_at"))
    names = [f"p{round(x * 100)}" for x in FRACTIONS]
    rows: list[dict[str, Any]]
    if connection.vendor == "postgresql":
        rows = _percentiles_rollup(qs, value, names)
    else:
        groups = list(
            qs.values("task_type_id", label=F("task_type__name"))
            .annotate(cases=Count("id"))
            .order_by("task_type__name")
        )
        rows = []
        for g in groups:
            subset = qs.filter(task_type_id=g["task_type_id"])
            figures = _percentiles_ordered(subset, value, g["cases"], FRACTIONS)
            rows.append(
                {"label": g["label"], "cases": g["cases"], **dict(zip(names, figures, strict=True))}
            )
        n = sum(g["cases"] for g in groups)
        rows.append(
            {
                "label": TOTAL,
                "cases": n,
                **dict(zip(names, _percentiles_ordered(qs, value, n, FRACTIONS), strict=True)),
            }
        )
    return MetricTable(
        key=key,
        title=title,
        columns=[
            Column("label", "Task type", "text"),
            Column("cases", "Cases"),
            Column("p50", "Median (p50)", "seconds"),
            Column("p90", "p90", "seconds"),
        ],
        rows=rows,
        chart="p90",
    )


def time_to_accept(f: MetricFilter) -> MetricTable:
    return _duration_table(
        f, key="time_to_accept", title="Time to accept", end_field="accepted_at", only=Q()
    )


def time_to_resolve(f: MetricFilter) -> MetricTable:
    return _duration_table(
        f,
        key="time_to_resolve",
        title="Time to resolve",
        end_field="closed_at",
        only=Q(status=Status.RESOLVED),
    )


def sla_attainment(f: MetricFilter, *, now: datetime | None = None) -> MetricTable:
    now = now or timezone.now()
    resolved = Q(status=Status.RESOLVED)
    met = resolved & Q(closed_at__lte=F("sla_resolve_due"))
    judged = resolved | Q(sla_resolve_due__lt=now)
    grouped = (
        cases(f)
        .filter(sla_resolve_due__isnull=False)
        .values("priority")
        .annotate(
            cases=Count("id"),
            judged=Count("id", filter=judged),
            met=Count("id", filter=met),
            breached=Count("id", filter=Q(sla_breached_at__isnull=False)),
        )
        .order_by("priority")
    )
    rows = [{**r, "label": f"P{r['priority']}"} for r in grouped]
    rows = _with_total(rows, ["cases", "judged", "met", "breached"])
    _finish(rows, lambda r: r.update(rate=_rate(r["met"], r["judged"])))
    return MetricTable(
        key="sla_attainment",
        title="SLA attainment per band",
        columns=[
            Column("label", "Band", "text"),
            Column("cases", "Cases with a target"),
            Column("judged", "Resolved or past due"),
            Column("met", "Resolved in time"),
            Column("breached", "Breach alerts"),
            Column("rate", "Attainment", "rate"),
        ],
        rows=rows,
        chart="rate",
    )


def satisfaction(f: MetricFilter) -> MetricTable:
    rows = _by_task_type(
        Feedback.objects.filter(_case_q(f, "escalation__")).order_by(),
        "escalation__",
        {
            "responses": Count("id"),
            "csat_n": Count("csat"),
            "csat_sum": Sum("csat"),
            "effort_n": Count("effort"),
            "effort_sum": Sum("effort"),
        },
    )
    rows = _with_total(rows, ["responses", "csat_n", "csat_sum", "effort_n", "effort_sum"])
    _finish(
        rows,
        lambda r: r.update(
            csat=_mean(r["csat_sum"], r["csat_n"]), effort=_mean(r["effort_sum"], r["effort_n"])
        ),
    )
    return MetricTable(
        key="satisfaction",
        title="Customer satisfaction and effort after handoff",
        columns=[
            Column("label", "Task type", "text"),
            Column("responses", "Responses"),
            Column("csat", "CSAT (1-5)", "number"),
            Column("effort", "Effort (1-7)", "number"),
        ],
        rows=rows,
        chart="csat",
    )


_TRIGGER_ELEMENTS = {
    "postgresql": (
        "CROSS JOIN LATERAL jsonb_array_elements(c.triggers) AS t(el)",
        "t.el ->> 'code'",
        "t.el ->> 'rule'",
    ),
    "sqlite": (
        ", json_each(c.triggers) AS t",
        "json_extract(t.value, '$.code')",
        "json_extract(t.value, '$.rule')",
    ),
}


def triggers(f: MetricFilter) -> MetricTable:
    # The final decision joined, not looked up per case: at most one per case (a unique
    # index), made after the case arrived, so the final-decision index bounds it by time.
    final = Q(decisions__final=True, decisions__created_at__gte=f.start)
    inner = (
        cases(f)
        .annotate(final_decision=FilteredRelation("decisions", condition=final))
        .values("triggers", "status", final_verb=F("final_decision__verb"))
        .annotate(n=Count("id"))
    )
    inner_sql, params = inner.query.sql_with_params()
    join, code, rule = _TRIGGER_ELEMENTS[connection.vendor]
    # Cases with the same triggers, status and final verb are grouped first, so the JSON is
    # expanded once a group, not once a case. Each group then has one row per trigger (a
    # rule firing twice on a case counts once) weighted by its cases, and these are summed.
    # Only constant fragments are formatted in; the inner query's values stay parameters.
    sql = f"""
        SELECT code, rule, sum(n),
               sum(CASE WHEN status = %s THEN n ELSE 0 END),
               sum(CASE WHEN final_verb IS NOT NULL THEN n ELSE 0 END),
               sum(CASE WHEN final_verb = %s THEN n ELSE 0 END),
               sum(CASE WHEN final_verb IS NOT NULL AND final_verb <> %s THEN n ELSE 0 END)
        FROM (
            SELECT DISTINCT c.triggers, c.status, c.final_verb, c.n, {code} AS code,
                   CASE WHEN {code} = 'policy_rule' THEN COALESCE({rule}, '') ELSE '' END AS rule
            FROM ({inner_sql}) AS c {join}
        ) AS fired
        GROUP BY code, rule
        ORDER BY sum(n) DESC, code, rule
    """  # noqa: S608
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The planner guesses 100 elements per JSON array, so it costs a few thousand
            # rows as a million and compiles the query with JIT: 200 ms for a 2 ms query.
            cursor.execute("SET LOCAL jit = off")
        cursor.execute(
            sql, [Status.AUTO_RESOLVED.value, Verb.APPROVE.value, Verb.APPROVE.value, *params]
        )
        fetched = cursor.fetchall()
    rows = [
        {
            "label": f"{code_}: {rule_}" if rule_ else code_,
            "code": code_,
            "rule": rule_,
            "cases": n,
            "auto_resolved": auto or 0,
            "decided": decided or 0,
            "approved": approved or 0,
            "overridden": overridden or 0,
            "rate": _rate(overridden, decided),
        }
        for code_, rule_, n, auto, decided, approved, overridden in fetched
    ]
    return MetricTable(
        key="triggers",
        title="Triggers: frequency and outcome",
        columns=[
            Column("label", "Trigger (rule)", "text"),
            Column("cases", "Cases"),
            Column("auto_resolved", "Auto-resolved"),
            Column("decided", "Decided"),
            Column("approved", "Approved unchanged"),
            Column("overridden", "Overridden"),
            Column("rate", "Override rate", "rate"),
        ],
        rows=rows,
        chart="cases",
    )


METRICS: dict[str, Callable[[MetricFilter], MetricTable]] = {
    "handoff_rate": handoff_rate,
    "override_rate": override_rate,
    "edit_rate": edit_rate,
    "quick_approvals": quick_approvals,
    "re_escalation_rate": re_escalation_rate,
    "time_to_accept": time_to_accept,
    "time_to_resolve": time_to_resolve,
    "sla_attainment": sla_attainment,
    "satisfaction": satisfaction,
    "triggers": triggers,
    "reviewers": reviewers,
}


def metrics_all(metric_filter: MetricFilter) -> list[MetricTable]:
    """Every metric, in page order. On PostgreSQL, outside a transaction, the independent
    aggregates run side by side on their own connections (the server has cores to spare
    while one query waits on another); inside a transaction, where other connections could
    not see its rows, and on SQLite, they run one after another."""
    queries = list(METRICS.values())
    workers = settings.BATON_METRICS_PARALLEL
    if connection.vendor != "postgresql" or connection.in_atomic_block or workers <= 1:
        return [query(metric_filter) for query in queries]

    def run(query: Callable[[MetricFilter], MetricTable]) -> MetricTable:
        try:
            return query(metric_filter)
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="metrics") as pool:
        return list(pool.map(run, queries))
