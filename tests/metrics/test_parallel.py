"""The metrics page's parallel path (PostgreSQL, committed data, own connections) answers
exactly what the queries answer one by one."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from metrics.queries import METRICS, metrics_all
from tests.metrics.conftest import PERIOD, History

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_metrics_in_parallel_equal_the_queries_one_by_one(
    history: History, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.BATON_METRICS_PARALLEL = 4
    threads: set[str] = set()
    for key, query in list(METRICS.items()):

        def traced(metric_filter, query=query):
            threads.add(threading.current_thread().name)
            return query(metric_filter)

        monkeypatch.setitem(METRICS, key, traced)
    assert not connection.in_atomic_block

    together = metrics_all(PERIOD)
    settings.BATON_METRICS_PARALLEL = 1
    one_by_one = metrics_all(PERIOD)

    assert together == one_by_one
    assert any(name.startswith("metrics") for name in threads)  # it did fan out
