"""Settings for the Delivery Lab dashboard.

The defaults are the embedded set-up: one process, SQLite and the in-memory channel layer,
so that `./run` works on a fresh machine with nothing else installed.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY",
    "django-insecure-delivery-lab-dev-key-do-not-use-in-production",
)
DEBUG = _env_bool("DJANGO_DEBUG", default=True)
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]

# Serve /static/ from the ASGI app itself (see asgi.py), so that a bare
# `daphne dashboard.asgi:application` shows styled pages too. Read here rather than from
# DEBUG at request time because test runners force DEBUG off.
SERVE_STATIC = _env_bool("LAB_SERVE_STATIC", default=DEBUG)

INSTALLED_APPS = [
    # First, so that `manage.py runserver` serves ASGI (HTTP and WebSocket) through Daphne.
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "dashboard.urls"

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

ASGI_APPLICATION = "dashboard.asgi.application"

# A later issue adds DATABASE_URL (a server database) and REDIS_URL (channels-redis) for the
# scale-out set-up; until then the embedded defaults below are the only ones.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # LAB_SQLITE_PATH: the browser tests' live server uses a temporary file.
        "NAME": os.environ.get("LAB_SQLITE_PATH", BASE_DIR / "db.sqlite3"),
        # A file, not memory: a live server in another process (browser tests) must see it.
        "TEST": {"NAME": BASE_DIR / "db-test.sqlite3"},
    }
}

CHANNEL_LAYERS = {
    "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"},
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Limits of the live dashboard (dashboard/runtime.py); each refusal says which one was hit.
LAB_MAX_ROOMS = int(os.environ.get("LAB_MAX_ROOMS", "32"))
LAB_MAX_RECORDS_PER_RUN = int(os.environ.get("LAB_MAX_RECORDS_PER_RUN", "200000"))
LAB_MAX_UPLOAD_BYTES = 64 * 1024
# One frame per tick at most: 50 ms is 20 frames per second.
LAB_TICK_MS = 50
# CPU time the engine may take per tick, so WebSockets stay responsive on "to the end".
LAB_TICK_BUDGET_MS = 8
