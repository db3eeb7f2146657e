"""LambdaLab settings: one file, driven by environment variables."""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    return os.getenv(name, default).lower() in ("1", "true", "yes", "on")


def envint(name: str, default: str) -> int:
    return int(os.getenv(name, default))


SECRET_KEY = os.getenv("SECRET_KEY", "dev-only-not-secret-change-me")
DEBUG = envbool("DEBUG", "True")
ALLOWED_HOSTS = os.getenv("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "lambdalab.lab",
    "lambdalab.courses",
    "lambdalab.shares",
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
]

ROOT_URLCONF = "lambdalab.urls"
WSGI_APPLICATION = "lambdalab.wsgi.application"
ASGI_APPLICATION = "lambdalab.asgi.application"

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

DATABASES = {
    "default": dj_database_url.parse(
        os.getenv("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", "300"),  # no reconnect (and PRAGMAs) per task or message
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker threads write at once: WAL lets readers go on, IMMEDIATE avoids lock upgrades
    # that fail, and the timeout waits out a writer rather than failing at once.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Tests share their database with Celery workers in other processes: a file, not memory.
    DATABASES["default"]["TEST"] = {
        "NAME": os.getenv("TEST_DATABASE_PATH", str(BASE_DIR / "test-db.sqlite3"))
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = DEBUG  # serve static/ straight from the tree in development
WHITENOISE_AUTOREFRESH = DEBUG

REDIS_URL = os.getenv("REDIS_URL", "redis://127.0.0.1:6379/0")

# No channel layer: the WebSocket consumer reads each function's event stream from Redis itself
# (exactly once, in order, resumable; see lambdalab/lab/consumers.py).
CHANNEL_LAYERS: dict = {}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"  # the hot path reads sessions from Redis

CELERY_BROKER_URL = os.getenv("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = os.getenv("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_WORKER_POOL = "threads"
CELERY_WORKER_CONCURRENCY = envint("CELERY_WORKER_CONCURRENCY", "32")  # threads: each waits on a jail
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = False  # user code is not idempotent: an invocation is never run twice
CELERY_TASK_DEFAULT_QUEUE = "lab"  # the shared queue; each worker also has its own (lab.w.<name>)
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# The engine: how many environments one worker process may hold, and its share of the host's RAM
# for Memory Size promises (0: the host's RAM less a reserve, over the workers per host).
LAMBDALAB_MAX_ENVIRONMENTS = envint("LAMBDALAB_MAX_ENVIRONMENTS", "256")
LAMBDALAB_STEM_CELLS = envint("LAMBDALAB_STEM_CELLS", "2")
LAMBDALAB_MEMORY_BUDGET_MB = envint("LAMBDALAB_MEMORY_BUDGET_MB", "0")
LAMBDALAB_HOST_RESERVE_MB = envint("LAMBDALAB_HOST_RESERVE_MB", "2048")
LAMBDALAB_WORKERS_PER_HOST = envint("LAMBDALAB_WORKERS_PER_HOST", "1")

# The lab's bounds
LAB_MAX_CODE_BYTES = envint("LAB_MAX_CODE_BYTES", str(512 * 1024))
LAB_MAX_BURST = envint("LAB_MAX_BURST", "20")  # invocations at once, or in a row, per request
LAB_MAX_PROVISIONED = envint("LAB_MAX_PROVISIONED", "5")  # provisioned concurrency per function
LAB_INVOCATIONS_PER_MINUTE = envint("LAB_INVOCATIONS_PER_MINUTE", "300")  # per owner and per address
LAB_MAX_LIVE_ENVIRONMENTS = envint("LAB_MAX_LIVE_ENVIRONMENTS", "30")  # per owner and per address
LAB_NEW_FUNCTIONS_PER_HOUR = envint("LAB_NEW_FUNCTIONS_PER_HOUR", "60")  # per owner
LAB_NEW_FUNCTIONS_PER_HOUR_PER_ADDRESS = envint(
    "LAB_NEW_FUNCTIONS_PER_HOUR_PER_ADDRESS", "600"
)  # a classroom
LAB_DEFAULT_IDLE_S = float(os.getenv("LAB_DEFAULT_IDLE_S", "600"))
LAB_ANONYMOUS_RETENTION_DAYS = envint("LAB_ANONYMOUS_RETENTION_DAYS", "7")

# Shared links (lambdalab/shares): ids are a salted hash of what is shared (the salt from
# LAB_SHARE_SALT, else derived from SECRET_KEY), and what one share may hold is bounded.
LAB_SHARE_SALT = os.getenv("LAB_SHARE_SALT", "")
LAB_SHARE_MAX_BYTES = envint("LAB_SHARE_MAX_BYTES", str(256 * 1024))  # the whole snapshot, as JSON
LAB_SHARE_MAX_INVOCATIONS = envint("LAB_SHARE_MAX_INVOCATIONS", "20")  # calls in a recorded run
LAB_SHARE_MAX_EVENTS = envint("LAB_SHARE_MAX_EVENTS", "600")  # lifecycle events in a recorded run
LAB_SHARE_LOG_LINES = envint("LAB_SHARE_LOG_LINES", "20")  # output lines kept per recorded call
LAB_SHARES_PER_HOUR = envint("LAB_SHARES_PER_HOUR", "30")  # new links per owner and per address

LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
