"""The entry point of one claimer process in test_claims_stress.

A new process imports this module before Django is set up, so nothing of Django's is
imported at the top. The test starts its claimers from a fork server that preloads this
module with DATABASE_ENV set: the server sets Django up once, pointed at the parent's
test database, and each claimer forked from it starts at once (32 separate set-ups would
take most of a minute on two cores). Started any other way, `main` sets Django up itself.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

DATABASE_ENV = "BATON_CLAIMS_DATABASE_NAME"
ACCEPT_SECONDS_ENV = "BATON_CLAIMS_OFFER_ACCEPT_SECONDS"


def setup_django() -> None:
    """Point Django at the parent's test database (no connection is opened) and set it up."""
    import django
    from django.apps import apps

    if apps.ready:
        return
    os.environ["DJANGO_SETTINGS_MODULE"] = "console.settings.test"
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = os.environ[DATABASE_ENV]
    settings.BATON_OFFER_ACCEPT_SECONDS = int(os.environ[ACCEPT_SECONDS_ENV])
    django.setup()
    from django.db import connections

    import tests.routing.test_claims_stress  # noqa: F401  (everything a claimer runs)

    connections.close_all()  # a fork server's connection must never be shared by its forks


def main(
    *,
    role: str,
    seed: int,
    seconds: float,
    database_name: str,
    accept_seconds: int,
    barrier: Any,
    results: Any,
) -> None:
    report: dict[str, Any] = {"role": role, "seed": seed, "counts": {}, "errors": []}
    try:
        # Already done when the fork server preloaded this module; if not, done here.
        os.environ.setdefault(DATABASE_ENV, database_name)
        os.environ.setdefault(ACCEPT_SECONDS_ENV, str(accept_seconds))
        setup_django()
        from tests.routing.test_claims_stress import claimer

        barrier.wait(timeout=60)
        report = claimer(role=role, seed=seed, seconds=seconds)
    except BaseException:
        report["errors"].append("claimer process failed:\n" + traceback.format_exc())
        barrier.abort()  # nobody waits for this one
    finally:
        try:
            from django.db import connections

            connections.close_all()
        finally:
            results.put(report)


if os.environ.get(DATABASE_ENV):  # preloaded by the test's fork server
    setup_django()
