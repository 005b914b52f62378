"""Test settings: the same as base, with what makes a test run fast and deterministic."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_DEBUG", "false")

from .base import *  # noqa: F403
from .base import DATABASES, VAR_DIR

SECRET_KEY = "baton-test-key"  # noqa: S105
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
# Tests deliver only to receivers they start on this machine, never to example hosts.
BATON_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1", "localhost", "::1"]
# Hashing passwords slowly buys nothing in tests.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Consumers are tested on the in-process layer, one event loop per test; the tests that
# are about Redis (marked `redis`) switch to channels-redis themselves.
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Tasks run in the test process so a test sees their effect; tests of real delivery
# drive the worker code directly.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["NAME"] = str(VAR_DIR / "test.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
    DATABASES["default"]["OPTIONS"].pop("init_command", None)
