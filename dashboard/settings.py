"""Settings for the Delivery Lab dashboard, read from the environment.

Without any environment variable this is the embedded set-up: one process, SQLite, the in-memory
channel layer, a local-memory cache and the rooms' runtime inside the web process, so that
`./run` works on a fresh machine with nothing else installed. The scale-out set-up (PostgreSQL
through ``DATABASE_URL``, Redis through ``REDIS_URL``, one ``manage.py labworker`` process running
every room behind several Daphne processes) and every variable read here are described in
docs/deployment.md.

A value that cannot be used stops the process with ``ImproperlyConfigured`` naming the variable
and what is wrong with it; secrets (passwords in URLs, the secret key) never appear in those
messages.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# Shared by every SQLite configuration: a file, not memory, because a live server in another
# process (the browser tests) must see the test database. LAB_TEST_DB names another file, so
# that two test runs in one checkout do not share (and destroy) each other's database.
_SQLITE_TEST_NAME = Path(os.environ.get("LAB_TEST_DB") or BASE_DIR / "db-test.sqlite3")
# How long a write waits for SQLite's lock (Django's default: 5 s). The room runtime saves
# from its own threads while requests write; on a busy machine a visitor should get a slower
# answer, not "database is locked".
_SQLITE_OPTIONS = {"timeout": 30}
_DEV_SECRET_KEY = "django-insecure-delivery-lab-dev-key-do-not-use-in-production"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# -- reading the environment -------------------------------------------------------------------
def _env(name: str) -> str | None:
    """The variable's value without surrounding blanks; unset and empty both read as None."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a yes/no value: use 1 or 0.")


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    value = _env(name)
    if value is None:
        return default
    try:
        number = int(value.replace("_", ""))
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None
    if number < minimum:
        what = "positive" if minimum == 1 else f"at least {minimum}"
        raise ImproperlyConfigured(f"{name}={value!r}: the number must be {what}.")
    return number


def _env_seconds(name: str, default: float) -> float:
    value = _env(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number of seconds.") from None
    if not 0 < number < math.inf:
        raise ImproperlyConfigured(f"{name}={value!r}: the number must be positive.")
    return number


def _env_list(name: str) -> list[str] | None:
    value = _env(name)
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise ImproperlyConfigured(f"{name} lists nothing: give comma-separated values.")
    return items


def _env_proxies(name: str) -> int:
    """How many proxies to trust: 1/0 (yes/no) or a number of proxies."""
    value = (_env(name) or "0").lower()
    if value in _TRUE | _FALSE:
        return int(value in _TRUE)
    return _env_int(name, 0, minimum=0)


def parse_rate(value: str, name: str = "rate") -> tuple[int, float]:
    """``"N/seconds"`` (``"10/60"``: ten per minute) as ``(N, seconds)``; both must be positive."""
    count, slash, seconds = value.strip().partition("/")
    try:
        if not slash:
            raise ValueError
        parsed = (int(count.strip()), float(seconds.strip()))
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate: write N/seconds, e.g. 10/60 for ten a minute."
        ) from None
    if parsed[0] < 1 or not (0 < parsed[1] < math.inf):
        raise ImproperlyConfigured(
            f"{name}={value!r}: both the count and the seconds must be positive."
        )
    return parsed


def _env_rate(name: str, default: str) -> tuple[int, float]:
    return parse_rate(_env(name) or default, name)


def parse_database_url(url: str, name: str = "DATABASE_URL") -> dict[str, Any]:
    """A Django ``DATABASES`` entry from a URL; no third-party parser.

    - ``postgres://user:password@host:port/database`` (or ``postgresql://``). User, password,
      host and port may be left out (libpq's defaults apply); percent-encode special
      characters, and a Unix socket directory as the host (``%2Fvar%2Frun%2Fpostgresql``).
      Query parameters go to libpq (``?sslmode=require``), except ``conn_max_age`` (seconds)
      and ``conn_health_checks`` (0/1), which are Django's.
    - ``sqlite:///relative/path`` (from the project folder) or ``sqlite:////absolute/path``.
    """
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a URL ({exc}).") from None
    if scheme == "sqlite":
        return _sqlite_database(parts, name)
    if scheme in {"postgres", "postgresql"}:
        return _postgres_database(parts, name)
    if not scheme or "://" not in url:
        raise ImproperlyConfigured(
            f"{name} is not a URL: write postgres://user:password@host:5432/name or "
            f"sqlite:///path/to/file.sqlite3."
        )
    raise ImproperlyConfigured(
        f"{name} has the scheme {scheme!r}; the lab supports postgres://, postgresql:// and "
        f"sqlite:///."
    )


def _sqlite_database(parts: Any, name: str) -> dict[str, Any]:
    path = unquote(parts.path)
    if parts.netloc == ":memory:" or path.lstrip("/") == ":memory:":
        raise ImproperlyConfigured(
            f"{name}: an in-memory SQLite database is not shared between the server's threads; "
            f"name a file (sqlite:///db.sqlite3)."
        )
    if parts.netloc:
        raise ImproperlyConfigured(
            f"{name}: a sqlite URL has no host; write sqlite:///relative/path or "
            f"sqlite:////absolute/path (three or four slashes)."
        )
    if parts.query or parts.fragment:
        raise ImproperlyConfigured(f"{name}: a sqlite URL takes no options (nothing after ?).")
    file = path[1:] if path.startswith("/") else path
    if not file or file.endswith("/"):
        raise ImproperlyConfigured(
            f"{name} names no SQLite file: write sqlite:///db.sqlite3 or sqlite:////abs/path."
        )
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / file,  # an absolute path stays as it is
        "TEST": {"NAME": _SQLITE_TEST_NAME},
        "OPTIONS": dict(_SQLITE_OPTIONS),
    }


def _postgres_database(parts: Any, name: str) -> dict[str, Any]:
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}: the port is not a number between 0 and 65535."
        ) from None
    hostinfo = parts.netloc.rpartition("@")[2]
    if hostinfo.startswith("["):
        end = hostinfo.find("]")
        if end < 0:
            raise ImproperlyConfigured(f"{name}: an IPv6 host is missing its closing ].")
        host = hostinfo[1:end]
    else:
        host = hostinfo.partition(":")[0]
    database = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not database:
        raise ImproperlyConfigured(
            f"{name} names no database: end it with /<database name> "
            f"(postgres://user:password@host:5432/delivery_lab)."
        )
    if "/" in database:
        raise ImproperlyConfigured(
            f"{name}: the database name cannot contain '/'; percent-encode it as %2F if it must."
        )
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}: the options after ? are not key=value pairs joined by &."
        ) from None
    options = dict(query)
    config: dict[str, Any] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": unquote(host),
        "PORT": "" if port is None else str(port),
        # Daphne serves each request on a thread of its own: Django's docs advise closing the
        # connection after each one under ASGI (use a pooler such as PgBouncer if needed).
        "CONN_MAX_AGE": 0,
    }
    if "conn_max_age" in options:
        raw = options.pop("conn_max_age")
        try:
            config["CONN_MAX_AGE"] = int(raw)
            if config["CONN_MAX_AGE"] < 0:
                raise ValueError
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: conn_max_age={raw!r} is not a number of seconds (0 or more)."
            ) from None
    if "conn_health_checks" in options:
        raw = options.pop("conn_health_checks")
        if raw.lower() not in _TRUE | _FALSE:
            raise ImproperlyConfigured(f"{name}: conn_health_checks={raw!r} is not 0 or 1.")
        config["CONN_HEALTH_CHECKS"] = raw.lower() in _TRUE
    if options:
        config["OPTIONS"] = options
    if importlib.util.find_spec("psycopg") is None:
        raise ImproperlyConfigured(
            f"{name} is a PostgreSQL URL but psycopg is not installed: "
            f"pip install 'psycopg[binary]' (the project's 'postgres' extra)."
        )
    return config


def _check_redis_url(url: str, name: str = "REDIS_URL") -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a URL ({exc}).") from None
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(
            f"{name} must start with redis://, rediss:// (TLS) or unix:// "
            f"(e.g. redis://127.0.0.1:6379/0)."
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ImproperlyConfigured(f"{name} names no host: redis://host:6379/0.")
    if parts.scheme == "unix" and not parts.path:
        raise ImproperlyConfigured(f"{name} names no socket: unix:///run/redis/redis.sock.")
    return url


def _origins_of(hosts: list[str], scheme: str) -> list[str]:
    """CSRF origins for ALLOWED_HOSTS (.example.org: any subdomain; * is skipped)."""
    origins = []
    for host in hosts:
        if host == "*":
            continue
        origins.append(f"{scheme}://*{host}" if host.startswith(".") else f"{scheme}://{host}")
    return origins


# -- core --------------------------------------------------------------------------------------
DEBUG = _env_bool("DJANGO_DEBUG", default=True)
SECRET_KEY = _env("DJANGO_SECRET_KEY") or _DEV_SECRET_KEY
if not DEBUG and SECRET_KEY == _DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is off but DJANGO_SECRET_KEY is not set: the development key is public. "
        "Set DJANGO_SECRET_KEY to 50 or more random characters, e.g. from "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )

# Behind a TLS-terminating proxy (or TLS in Daphne): secure cookies, HSTS, redirect to https.
LAB_HTTPS = _env_bool("LAB_HTTPS", default=False)

ALLOWED_HOSTS = _env_list("DJANGO_ALLOWED_HOSTS") or [
    "localhost",
    "127.0.0.1",
    "[::1]",
    "testserver",
]


CSRF_TRUSTED_ORIGINS = _env_list("DJANGO_CSRF_TRUSTED_ORIGINS") or (
    _origins_of(ALLOWED_HOSTS, "https" if LAB_HTTPS else "http")
    if _env("DJANGO_ALLOWED_HOSTS")
    else []
)
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"DJANGO_CSRF_TRUSTED_ORIGINS: {_origin!r} is not an origin; write "
            f"https://lab.example.org (scheme and host)."
        )

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
    # Content-Security-Policy on every HTML response (dashboard/security.py).
    "dashboard.security.content_security_policy",
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

# -- database ----------------------------------------------------------------------------------
_database_url = _env("DATABASE_URL")
if _database_url is not None:
    DATABASES = {"default": parse_database_url(_database_url)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            # LAB_SQLITE_PATH: the browser tests' live server uses a temporary file.
            "NAME": _env("LAB_SQLITE_PATH") or BASE_DIR / "db.sqlite3",
            "TEST": {"NAME": _SQLITE_TEST_NAME},
            "OPTIONS": dict(_SQLITE_OPTIONS),
        }
    }

# -- Redis: channel layer and cache ------------------------------------------------------------
REDIS_URL = _env("REDIS_URL")
if REDIS_URL is not None:
    _check_redis_url(REDIS_URL)
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # redis-py 8 gives every socket a 5 s read timeout, which breaks the
                        # layer's 5 s blocking receive (BZPOPMIN) every time nothing arrives
                        # for 5 s (channels_redis issue 422): wait longer than that, but not
                        # forever, so that a dead connection is still noticed.
                        "socket_timeout": 15,
                        "socket_connect_timeout": 5,
                    }
                ],
                "prefix": "lab",
                # Messages a channel may queue before sends to it fail: at 20 frames a second,
                # a browser that stops reading is 50 s behind before frames are dropped.
                "capacity": 1000,
                # A queued frame or control older than this is stale: dropped, not delivered.
                "expiry": 30,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "lab",
            # A Redis that stops answering fails requests after 2 s instead of hanging them.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"},
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            # The rate-limit counters live here; culling them early would reset the limits.
            "OPTIONS": {"MAX_ENTRIES": 50_000},
        }
    }

# Where the rooms run: "embedded" in each web process (one process only), or "worker": only in
# the one `manage.py labworker` process, which the web processes reach through the channel layer.
LAB_RUNTIME = (_env("LAB_RUNTIME") or ("worker" if REDIS_URL else "embedded")).lower()
if LAB_RUNTIME not in {"embedded", "worker"}:
    raise ImproperlyConfigured(
        f"LAB_RUNTIME={LAB_RUNTIME!r}: use 'embedded' (rooms run in the web "
        f"process) or 'worker' (rooms run in `manage.py labworker`)."
    )
# How long a web process waits for the worker to answer a call before telling the user.
LAB_RUNTIME_TIMEOUT_S = _env_seconds("LAB_RUNTIME_TIMEOUT_S", 10.0)
if LAB_RUNTIME == "worker" and REDIS_URL is None:
    raise ImproperlyConfigured(
        "LAB_RUNTIME=worker needs REDIS_URL: the web processes reach the worker through the "
        "Redis channel layer."
    )

# -- sessions, cookies and security headers ----------------------------------------------------
# Database sessions (Django's default engine): they survive restarts and are shared by every
# web process through the database.
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = LAB_HTTPS
CSRF_COOKIE_SECURE = LAB_HTTPS
SECURE_SSL_REDIRECT = LAB_HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS: list[str] = []
if LAB_HTTPS:
    # The proxy terminating TLS must set this header on every request it forwards (and
    # overwrite any value the client sent): it is how Django knows the request was https.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = _env_int("LAB_HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("LAB_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = _env_bool("LAB_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a decision of the registrable domain's owner (the preload list takes
        # whole domains, not a lab's subdomain); see docs/deployment.md. LAB_HSTS_PRELOAD=1
        # sends the directive and brings the check back.
        SILENCED_SYSTEM_CHECKS.append("security.W021")

# Read the client's address from X-Forwarded-For (workshops/ratelimit.py): 0 (off, default)
# uses the TCP peer; N > 0 trusts the last N proxies (1: one reverse proxy that appends).
LAB_TRUST_X_FORWARDED_FOR = _env_proxies("LAB_TRUST_X_FORWARDED_FOR")

# -- logging -----------------------------------------------------------------------------------
# Everything at LAB_LOG_LEVEL and above goes to stderr, DEBUG or not (Django's default only
# prints errors while DEBUG is on, and mails them to ADMINS otherwise).
LAB_LOG_LEVEL = (_env("LAB_LOG_LEVEL") or "INFO").upper()
if LAB_LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LAB_LOG_LEVEL={LAB_LOG_LEVEL!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"},
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["stderr"], "level": LAB_LOG_LEVEL},
    "loggers": {
        # Replaces Django's own handlers (console while DEBUG, mail_admins otherwise).
        "django": {"handlers": ["stderr"], "level": LAB_LOG_LEVEL, "propagate": False},
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# `manage.py collectstatic` copies every static file here, for the proxy to serve.
STATIC_ROOT = Path(_env("LAB_STATIC_ROOT") or BASE_DIR / "staticfiles")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# -- limits of the live dashboard --------------------------------------------------------------
# dashboard/live/runtime.py and dashboard/workshops/rooms.py; each refusal says which one was hit.
LAB_MAX_ROOMS = _env_int("LAB_MAX_ROOMS", 32)  # workshop rooms at once
# Attendees' sandboxes and detached views; past it, the least recently used one goes.
LAB_MAX_PRIVATE_ROOMS = _env_int("LAB_MAX_PRIVATE_ROOMS", 400)
LAB_ROOM_IDLE_EXPIRY_S = _env_int("LAB_ROOM_IDLE_EXPIRY_S", 4 * 3600)
# A workshop room counts against LAB_MAX_ROOMS only while in use: watched, or used within this
# long. Past it, the room is parked: it expires early when a new room needs its place.
LAB_ROOM_HOLD_S = _env_int("LAB_ROOM_HOLD_S", 600)
# How often idle rooms are expired (and watched ones marked as used).
LAB_SWEEP_EVERY_S = _env_int("LAB_SWEEP_EVERY_S", 60)
# Workshop rooms in use that one client address may hold at once.
LAB_MAX_ROOMS_PER_CLIENT = _env_int("LAB_MAX_ROOMS_PER_CLIENT", 6)
LAB_MAX_CONNECTIONS_PER_ROOM = _env_int("LAB_MAX_CONNECTIONS_PER_ROOM", 500)
# Bytes the server may hold for one WebSocket that is not reading (dashboard/live/fanout.py): past
# it, frames skip that browser until it catches up; after LAB_WS_STALL_CLOSE_S it is closed.
LAB_WS_SEND_BUFFER_BYTES = _env_int("LAB_WS_SEND_BUFFER_BYTES", 256 * 1024, minimum=16 * 1024)
LAB_WS_STALL_CLOSE_S = _env_seconds("LAB_WS_STALL_CLOSE_S", 30.0)
# Per-message deflate on WebSockets, one compressed frame shared by all (dashboard/live/deflate.py).
LAB_WS_DEFLATE = _env_bool("LAB_WS_DEFLATE", default=True)
LAB_MAX_RECORDS_PER_RUN = _env_int("LAB_MAX_RECORDS_PER_RUN", 200_000)
# Real Kafka clients in rooms (dashboard/live/wire.py, docs/kafka-clients.md): on or off, the
# address to listen on, broker-1's port (broker-N's is PORT+N-1; 0: any free ports, so each room
# gets its own), connections per room and rooms listening at once.
LAB_KAFKA_LISTENERS = _env_bool("LAB_KAFKA_LISTENERS", default=True)
LAB_KAFKA_ADDR = _env("LAB_KAFKA_ADDR") or "127.0.0.1"
try:
    ipaddress.ip_address(LAB_KAFKA_ADDR)
except ValueError:
    raise ImproperlyConfigured(
        f"LAB_KAFKA_ADDR={LAB_KAFKA_ADDR!r} is not an IP address: use 127.0.0.1 (this machine "
        "only) or the address of a network interface (0.0.0.0: all of them)."
    ) from None
LAB_KAFKA_PORT = _env_int("LAB_KAFKA_PORT", 0, minimum=0)
if LAB_KAFKA_PORT > 65_000:
    raise ImproperlyConfigured(
        f"LAB_KAFKA_PORT={LAB_KAFKA_PORT}: broker-N listens on PORT+N-1, so keep it at most "
        "65000 (or 0: any free ports)."
    )
LAB_KAFKA_MAX_CONNECTIONS = _env_int("LAB_KAFKA_MAX_CONNECTIONS", 64)
LAB_KAFKA_MAX_ROOMS = _env_int("LAB_KAFKA_MAX_ROOMS", 8)
# The most messages one "send N more" of the experiments panel may ask for (panels/experiments.py).
LAB_MAX_SEND_MORE = _env_int("LAB_MAX_SEND_MORE", 1000)
LAB_MAX_UPLOAD_BYTES = _env_int("LAB_MAX_UPLOAD_BYTES", 64 * 1024)  # a scenario file
LAB_MAX_RUN_UPLOAD_BYTES = _env_int("LAB_MAX_RUN_UPLOAD_BYTES", 512 * 1024)  # a saved run
# Django refuses a larger request body before any view sees it (400); keep it above the
# lab's own limits so that those, with their clearer messages, apply first.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(
    2_621_440, LAB_MAX_UPLOAD_BYTES + 65_536, LAB_MAX_RUN_UPLOAD_BYTES + 65_536
)
# Steps a saved run may replay when opened (dashboard/runs/store.py).
LAB_MAX_REPLAY_STEPS = _env_int("LAB_MAX_REPLAY_STEPS", 1_000_000)
# One frame per tick at most: 50 ms is 20 frames per second.
LAB_TICK_MS = 50
# CPU time the engine may take per tick, so WebSockets stay responsive on "to the end".
LAB_TICK_BUDGET_MS = 8
# Sharing the event loop (dashboard/live/pacing.py): every room's ticks together get this much of
# each tick period; rooms playing at once (private copies: at most LAB_MAX_PLAYING_PRIVATE of
# them); a room nobody watches pauses after LAB_PAUSE_UNWATCHED_S.
LAB_LOOP_BUDGET_MS = _env_int("LAB_LOOP_BUDGET_MS", 30)
LAB_MAX_PLAYING_ROOMS = _env_int("LAB_MAX_PLAYING_ROOMS", 4)
LAB_MAX_PLAYING_PRIVATE = _env_int("LAB_MAX_PLAYING_PRIVATE", max(1, LAB_MAX_PLAYING_ROOMS // 2))
LAB_PAUSE_UNWATCHED_S = _env_seconds("LAB_PAUSE_UNWATCHED_S", 60.0)
# "Try it yourself" and detached views (dashboard/live/forking.py): copies made at once per process
# (more wait in line, up to LAB_MAX_FORKS_WAITING), and private rooms per browser session.
LAB_MAX_FORKS_RUNNING = _env_int("LAB_MAX_FORKS_RUNNING", 2)
LAB_MAX_FORKS_WAITING = _env_int("LAB_MAX_FORKS_WAITING", 8, minimum=0)
LAB_MAX_PRIVATE_ROOMS_PER_CLIENT = _env_int("LAB_MAX_PRIVATE_ROOMS_PER_CLIENT", 3)
# Saved runs replayed at once per process (dashboard/runs/store.py); more wait up to 15 s.
LAB_MAX_REPLAYS_RUNNING = _env_int("LAB_MAX_REPLAYS_RUNNING", 2)

# -- rate limits (dashboard/workshops/ratelimit.py): (requests, per seconds) -------------------
LAB_RATE_ROOM_CREATE = _env_rate("LAB_RATE_ROOM_CREATE", "10/60")  # per client address
LAB_RATE_VOTE = _env_rate("LAB_RATE_VOTE", "20/60")  # per attendee
LAB_RATE_CONTROL = _env_rate("LAB_RATE_CONTROL", "20/1")  # per connection or session
LAB_RATE_FORK = _env_rate("LAB_RATE_FORK", "10/60")  # per attendee
# Saved runs, per client address: imports, and views of a run's page, report or export (each
# may replay the run).
LAB_RATE_RUN_IMPORT = _env_rate("LAB_RATE_RUN_IMPORT", "10/60")
LAB_RATE_RUN_VIEW = _env_rate("LAB_RATE_RUN_VIEW", "120/60")
LAB_RATE_FORK_SESSION = _env_rate("LAB_RATE_FORK_SESSION", "4/60")  # per browser session
# Wrong join codes (/r/<code>/ and /join/) per client address; see docs/workshops.md for why
# eight-character codes make guessing hopeless at this rate.
LAB_RATE_JOIN_FAIL = _env_rate("LAB_RATE_JOIN_FAIL", "30/60")
# Votes per client address on one question: a classroom of ~300 behind one NAT, with retries.
LAB_RATE_VOTE_IP = _env_rate("LAB_RATE_VOTE_IP", "400/600")
# Full frames asked for ("resync", 15-20 KB each): per connection, and per client address
# (where a whole classroom may reconnect at once).
LAB_RATE_RESYNC = _env_rate("LAB_RATE_RESYNC", "10/60")
LAB_RATE_RESYNC_IP = _env_rate("LAB_RATE_RESYNC_IP", "600/60")
# The cache the counters live in: shared by every process when it is Redis.
LAB_RATELIMIT_CACHE = "default"
