"""Baton settings: everything is read from the environment.

Unset, the embedded defaults serve (SQLite, in-process channel layer, a Celery broker
that needs no server), so one command runs Baton on a fresh machine. `DATABASE_URL` and
`REDIS_URL` switch to PostgreSQL and Redis.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("BATON_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# The embedded default is a local demo, so an insecure key is acceptable only when
# DEBUG is on; production must set DJANGO_SECRET_KEY.
DEBUG = env_bool("DJANGO_DEBUG", default=False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or (
    "baton-embedded-insecure-key" if DEBUG or not os.environ.get("DATABASE_URL") else ""
)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "channels",
    "ninja",
    "console",
    "escalations",
    "routing",
    "metrics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "console.urls"
ASGI_APPLICATION = "console.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
# SQLite in IMMEDIATE mode takes the write lock when a transaction starts, so concurrent
# writers queue instead of failing half-way (and the audit chain stays linear).
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'baton.sqlite3'}",
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer and Celery broker ---------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # A consumer waits on Redis with a 5 s BZPOPMIN; redis-py's default socket
            # timeout is also 5 s, so a process whose consoles hear nothing for 5 s had its
            # read time out and a console dropped (the scale_out drill's idle tabs). A read
            # may take the whole block time and more.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
        }
    }
else:
    # One process serves every console in the embedded default, so in-process is enough.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL == "filesystem://":
    # A real worker over a folder queue: no server to run, and countdowns, ETAs and
    # retries behave exactly as with Redis because the worker itself schedules them.
    _queue_dir = VAR_DIR / "celery-queue"
    _queue_dir.mkdir(exist_ok=True)
    (VAR_DIR / "celery-processed").mkdir(exist_ok=True)
    (VAR_DIR / "celery-control").mkdir(exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(VAR_DIR / "celery-processed"),
        "control_folder": str(VAR_DIR / "celery-control"),
        "store_processed": False,
    }
    # The folder transport has no fanout, so remote control is off.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True  # results travel through the database, never the backend
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# How often the metrics page's long periods are recomputed: how stale a year may be
# (beat's schedule below needs it, so it is read here rather than with the BATON_* below).
BATON_METRICS_SNAPSHOT_MINUTES = int(os.environ.get("BATON_METRICS_SNAPSHOT_MINUTES", "15"))
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Re-drives webhook deliveries that are due: retries, lost messages, dead workers.
    "sweep-deliveries": {"task": "escalations.sweep_deliveries", "schedule": 30.0},
    # Offers queued cases to whoever became free, and moves unaccepted offers on.
    "assign-queued": {"task": "routing.assign_queued", "schedule": 15.0},
    "expire-offers": {"task": "routing.expire_offers", "schedule": 15.0},
    # Service-level clocks: a warning or breach shows within half a minute of its moment.
    "sla-sweep": {"task": "routing.sla_sweep", "schedule": 30.0},
    # The metrics page's long periods (30 days and more), too slow to aggregate per request.
    "metric-snapshots": {
        "task": "metrics.refresh_snapshots",
        "schedule": 60.0 * BATON_METRICS_SNAPSHOT_MINUTES,
    },
}
CELERY_TIMEZONE = "UTC"

# --- Auth -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

# --- I18n / time ------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("BATON_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static -----------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Served by WhiteNoise from the ASGI process itself; no separate web server is needed.
WHITENOISE_USE_FINDERS = True

# --- Security ---------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY") else None
)
SESSION_COOKIE_SECURE = env_bool("BEHIND_TLS_PROXY")
CSRF_COOKIE_SECURE = env_bool("BEHIND_TLS_PROXY")

# --- Baton ------------------------------------------------------------------------------
# A handoff package is text and a transcript, never attachments: 1 MiB is generous and
# keeps one agent from filling memory.
BATON_MAX_REQUEST_BYTES = int(os.environ.get("BATON_MAX_REQUEST_BYTES", str(1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = BATON_MAX_REQUEST_BYTES
BATON_PUBLIC_URL = os.environ.get("BATON_PUBLIC_URL", "http://127.0.0.1:8000")
# Default SLA targets per priority band, in seconds (accept, resolve); admins edit later.
BATON_SLA_DEFAULTS = {
    1: {"accept": 2 * 60, "resolve": 15 * 60},
    2: {"accept": 10 * 60, "resolve": 60 * 60},
    3: {"accept": 30 * 60, "resolve": 4 * 60 * 60},
    4: {"accept": 2 * 60 * 60, "resolve": 24 * 60 * 60},
}
# Hosts Baton may deliver decisions to; empty allows any (an agent names its callback URL,
# so production should list its agents' hosts to keep signed requests off internal ones).
BATON_WEBHOOK_ALLOWED_HOSTS = env_list("BATON_WEBHOOK_ALLOWED_HOSTS")
# An offered case not accepted in this time goes to the next eligible person.
BATON_OFFER_ACCEPT_SECONDS = int(os.environ.get("BATON_OFFER_ACCEPT_SECONDS", "120"))
# A rough handling time per case, for the ETA told to agents whose case waits in the queue.
BATON_AVERAGE_HANDLING_SECONDS = int(os.environ.get("BATON_AVERAGE_HANDLING_SECONDS", "300"))
# The metrics page runs its independent aggregates on this many connections at once
# (PostgreSQL, outside a transaction); 1 runs them one after another.
BATON_METRICS_PARALLEL = int(os.environ.get("BATON_METRICS_PARALLEL", "4"))
# The window in which a customer's escalations count towards `repeated_failure`.
BATON_REPEAT_WINDOW_HOURS = int(os.environ.get("BATON_REPEAT_WINDOW_HOURS", "72"))
BATON_REPEAT_LIMIT = int(os.environ.get("BATON_REPEAT_LIMIT", "3"))
BATON_ATTEMPTS_LIMIT = int(os.environ.get("BATON_ATTEMPTS_LIMIT", "3"))
# Earned autonomy (DESIGN §10): a task type whose last N human decisions in the window were
# approved unchanged at this share is a candidate to move down a level; an L1 type whose
# after-the-fact reviews are reversed above this rate (over a minimum sample) moves back up.
BATON_AUTONOMY_MIN_DECISIONS = int(os.environ.get("BATON_AUTONOMY_MIN_DECISIONS", "50"))
BATON_AUTONOMY_WINDOW_DAYS = int(os.environ.get("BATON_AUTONOMY_WINDOW_DAYS", "30"))
BATON_AUTONOMY_APPROVE_SHARE = float(os.environ.get("BATON_AUTONOMY_APPROVE_SHARE", "0.95"))
BATON_AUTONOMY_REVERSAL_RATE = float(os.environ.get("BATON_AUTONOMY_REVERSAL_RATE", "0.05"))
BATON_AUTONOMY_MIN_REVIEWS = int(os.environ.get("BATON_AUTONOMY_MIN_REVIEWS", "20"))
# `POST /api/v1/bench/noop` (parses a handoff package, stores nothing): the baseline the
# ingest benchmark compares against; off, the route does not exist at all.
BATON_BENCH_ENDPOINTS = env_bool("BATON_BENCH_ENDPOINTS", default=False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
