"""Health of what Baton depends on: the database, the channel layer and the broker."""

from __future__ import annotations

import time
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "vendor": connection.vendor}


def _check_channel_layer() -> dict[str, Any]:
    layer = get_channel_layer()
    if layer is None:
        return {"ok": False, "error": "no channel layer configured"}

    async def round_trip() -> None:
        channel = await layer.new_channel("healthz.")
        marker = uuid.uuid4().hex
        await layer.send(channel, {"type": "healthz.ping", "marker": marker})
        message = await layer.receive(channel)
        if message.get("marker") != marker:
            raise RuntimeError("the channel layer returned another message")

    async_to_sync(round_trip)()
    return {"ok": True, "backend": type(layer).__name__}


def _check_broker() -> dict[str, Any]:
    from console.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        transport = conn.transport_cls
    return {"ok": True, "transport": str(transport)}


def health_report() -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name, check in (
        ("database", _check_database),
        ("channel_layer", _check_channel_layer),
        ("broker", _check_broker),
    ):
        started = time.perf_counter()
        try:
            result = check()
        except Exception as exc:  # a health check reports every failure, whatever it is
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        result["ms"] = round((time.perf_counter() - started) * 1000, 1)
        report[name] = result
    report["ok"] = all(part["ok"] for part in report.values())
    return report
