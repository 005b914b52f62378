"""Inbox: the first and a deep inbox page with a million cases in the table, against the
same query run bare in SQL, and the plan that shows it walks an index with no sort.

The cases come from bench_metrics' generator (INSERT … SELECT over a year: 3 % still
queued, the rest resolved or auto-resolved), so the live inbox is ~30,000 cases among a
million. Each page is timed three ways:

- the selector alone (`inbox_for_reviewer`, as the view calls it),
- the page as a browser gets it (`GET /?view=…` with a logged-in session, from uvicorn),
- the SQL the selector emits, taken from the ORM and run on a bare psycopg connection.

"Deep" is the cursor of the row half-way down the view (page ~300 of 50 rows at a
million cases). The plan is EXPLAIN (ANALYZE, BUFFERS) of the bare SQL; the "before" rows
run the keyset predicate Baton used to write (ORs instead of a row comparison) without the
live-inbox index, in a transaction that is rolled back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.bench import harness

REPEAT_QUICK, REPEAT = 15, 40
# How far down the view the deep page starts: half-way is page ~300 of 50 rows at a
# million cases (15,000 rows skipped) with as many still after it.
DEEP = 0.5


@dataclass
class Page:
    who: str
    user: Any
    view: str
    page: str  # "first" or "deep"
    cursor: str | None


def _times(call: Callable[[], Any], n: int) -> list[float]:
    call()  # warm: plan cache, buffers, the user's permissions
    out = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def _page_sql(page: Page) -> str:
    """The inbox query the selector sends for this page, as sent (parameters inlined)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from escalations.models import Escalation
    from escalations.selectors import InboxFilters, inbox_for_reviewer

    table = Escalation._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        inbox_for_reviewer(user=page.user, filters=InboxFilters(view=page.view), after=page.cursor)
    main = [q["sql"] for q in queries.captured_queries if f'FROM "{table}"' in q["sql"]]
    assert len(main) == 1, main
    return main[0]


def _deep_cursor(user: Any, view: str, share: float) -> str:
    """The cursor of the row `share` of the way down the view's order."""
    from escalations.selectors import InboxFilters, _cursor_of, inbox_for_reviewer

    # The selector's own query without a limit gives the view's rows in order.
    page = inbox_for_reviewer(user=user, filters=InboxFilters(view=view), limit=10**7)
    row = page.rows[int(len(page.rows) * share)]
    return _cursor_of(row)


def _explain(conn: Any, sql: str) -> list[str]:
    return [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql).fetchall()]


def _plan_ok(plan: list[str]) -> str:
    uses_index = any("Index" in line for line in plan)
    sorts = any(line.strip().lstrip("->").strip().startswith("Sort") for line in plan)
    return "yes" if uses_index and not sorts else "NO"


def _or_form(page: Page) -> str:
    """The same page with the keyset predicate written as ORs (Baton's before)."""
    from django.db import connection
    from django.db.models import Q
    from django.test.utils import CaptureQueriesContext

    from escalations.models import Escalation, Status
    from escalations.selectors import INBOX_STATUSES, LIVE_STATUSES, _parse_cursor, _takeable

    cases = Escalation.objects.select_related("task_type", "customer", "assignee")
    if page.view == "queue":  # as the selector filters the two views
        cases = _takeable(cases.filter(status=Status.QUEUED), user=page.user)
        cases = cases.filter(status__in=INBOX_STATUSES)
    else:
        cases = cases.filter(status__in=LIVE_STATUSES)
    if page.cursor:
        priority, due, pk = _parse_cursor(page.cursor)
        cases = cases.filter(
            Q(priority__gt=priority)
            | Q(priority=priority, sla_resolve_due__gt=due)
            | Q(priority=priority, sla_resolve_due=due, pk__gt=pk)
        )
    with CaptureQueriesContext(connection) as queries:
        list(cases.order_by("priority", "sla_resolve_due", "id")[:51])
    return str(queries.captured_queries[-1]["sql"])


def run(report: harness.Report, *, quick: bool) -> None:
    import httpx
    import psycopg
    from django.contrib.auth.models import User

    from escalations.models import Escalation
    from escalations.selectors import LIVE_STATUSES, InboxFilters, inbox_for_reviewer
    from metrics.management.commands.bench_metrics import generate_cases

    total = 50_000 if quick else 1_000_000
    repeat = REPEAT_QUICK if quick else REPEAT
    started = time.perf_counter()
    generate_cases(total, write=lambda line: print(" ", line, flush=True))
    generated = time.perf_counter() - started
    live = Escalation.objects.filter(status__in=LIVE_STATUSES).count()

    supervisor = User.objects.get(username="bench-supervisor")
    reviewer = User.objects.get(username="bench-reviewer-0")
    pages = []
    for who, user, view in (("supervisor", supervisor, "all"), ("reviewer", reviewer, "queue")):
        pages.append(Page(who, user, view, "first", None))
        pages.append(Page(who, user, view, "deep", _deep_cursor(user, view, DEEP)))

    rows, plans, before = [], [], []
    with harness.Stack() as stack, psycopg.connect(harness.database_url()) as bare:
        server = stack.asgi("asgi")
        cookies = {p.who: harness.session_cookie(p.user) for p in pages}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for page in pages:
                sql = _page_sql(page)
                params: dict[str, str] = {"view": page.view}
                if page.cursor:
                    params["after"] = page.cursor

                def selector(page: Page = page) -> None:
                    inbox_for_reviewer(
                        user=page.user, filters=InboxFilters(view=page.view), after=page.cursor
                    )

                def http(page: Page = page, params: dict[str, str] = params) -> None:
                    response = client.get(
                        "/", params=params, cookies={"sessionid": cookies[page.who]}
                    )
                    assert response.status_code == 200, response.status_code
                    assert "case" in response.text

                def sql_bare(sql: str = sql) -> None:
                    bare.execute(sql).fetchall()

                t_sel, t_http, t_sql = (
                    _times(selector, repeat),
                    _times(http, repeat),
                    _times(sql_bare, repeat),
                )
                p95 = {
                    k: harness.percentile(v, 95)
                    for k, v in (("sel", t_sel), ("http", t_http), ("sql", t_sql))
                }
                plan = _explain(bare, sql)
                bare.rollback()
                rows.append(
                    [
                        f"{page.who}: {page.view}",
                        page.page,
                        harness.ms(harness.percentile(t_sql, 50)),
                        harness.ms(p95["sql"]),
                        harness.ms(harness.percentile(t_sel, 50)),
                        harness.ms(p95["sel"]),
                        harness.ms(harness.percentile(t_http, 50)),
                        harness.ms(p95["http"]),
                        f"{p95['sel'] / p95['sql']:.1f}x",
                        f"{p95['http'] / p95['sql']:.1f}x",
                        _plan_ok(plan),
                    ]
                )
                plans.append((page, plan))
                # Before: the OR-form predicate, without the live-inbox index.
                old = _or_form(page)
                bare.execute("DROP INDEX esc_live_inbox")
                t_old = _times(lambda old=old: bare.execute(old).fetchall(), max(5, repeat // 4))
                old_plan = _explain(bare, old)
                bare.rollback()
                before.append(
                    [
                        f"{page.who}: {page.view}",
                        page.page,
                        harness.ms(harness.percentile(t_old, 95)),
                        harness.ms(p95["sql"]),
                        _plan_ok(old_plan),
                        _plan_ok(plan),
                    ]
                )

    report.table(
        f"Inbox: a page of 50 with {total:,} cases in the table ({live:,} live)",
        [
            "view",
            "page",
            "bare SQL p50 ms",
            "bare SQL p95 ms",
            "selector p50 ms",
            "selector p95 ms",
            "HTTP GET p50 ms",
            "HTTP GET p95 ms",
            "selector/SQL p95",
            "HTTP/SQL p95",
            "index, no sort",
        ],
        rows,
        notes=[
            f"Cases generated by bench_metrics' INSERT … SELECT in {generated:.0f} s, then "
            f"ANALYZE. Deep page = the cursor of the row {DEEP:.0%} of the way down the view.",
            f"{repeat} timed runs each after one warm-up, one after another (no concurrency); "
            "HTTP through one uvicorn process with a logged-in session (the full page: "
            "session, permissions, template); bare SQL = the selector's query as the ORM "
            "sent it, on a psycopg connection.",
            "Target: the deep page within 3x of bare SQL.",
        ],
    )
    report.table(
        "Inbox: before (keyset as ORs, no live-inbox index) and after, bare SQL",
        ["view", "page", "before p95 ms", "after p95 ms", "before: index, no sort", "after"],
        before,
    )
    for page, plan in plans:
        report.table(
            f"Inbox plan: {page.who} {page.view}, {page.page} page",
            ["EXPLAIN (ANALYZE, BUFFERS)"],
            [[f"`{line}`"] for line in plan],
        )
