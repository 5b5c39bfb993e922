"""Settings from the environment (dashboard/settings.py).

Each test runs the settings file afresh (``runpy``) under an environment of its own, so nothing
here changes the settings the rest of the suite runs with; the ``check --deploy`` tests run
``manage.py`` in a subprocess.
"""

from __future__ import annotations

import os
import runpy
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from dashboard import settings as settings_module

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_FILE = settings_module.__file__
SQLITE_TEST = ROOT / "db-test.sqlite3"


def clean_env() -> dict[str, str]:
    """This process's environment without anything the settings read."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LAB_", "DJANGO_")) and name not in {"DATABASE_URL", "REDIS_URL"}
    }


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> Any:
    """load(NAME=value, ...): the settings module's names under exactly that environment."""

    def load_settings(**env: str) -> dict[str, Any]:
        for name in set(os.environ) - set(clean_env()):
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(SETTINGS_FILE)

    return load_settings


def refused(load: Any, **env: str) -> str:
    with pytest.raises(ImproperlyConfigured) as info:
        load(**env)
    return str(info.value)


def a_secret_key() -> str:
    return secrets.token_urlsafe(50)


# -- the zero-setup default ----------------------------------------------------------------------
def test_without_environment_the_lab_is_embedded(load: Any) -> None:
    s = load()

    assert s["DEBUG"] is True
    assert s["DATABASES"]["default"] == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ROOT / "db.sqlite3",
        "TEST": {"NAME": SQLITE_TEST},
        "OPTIONS": {"timeout": 30},
    }
    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert s["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert s["LAB_RUNTIME"] == "embedded"
    assert s["REDIS_URL"] is None
    assert s["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]", "testserver"]
    assert s["SECURE_SSL_REDIRECT"] is False
    assert s["SESSION_COOKIE_SECURE"] is False
    assert s["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert s["SERVE_STATIC"] is True


def test_the_limits_have_their_defaults(load: Any) -> None:
    s = load()

    assert {name: s[name] for name in s if name.startswith(("LAB_MAX_", "LAB_ROOM_"))} == {
        "LAB_MAX_ROOMS": 32,
        "LAB_MAX_PRIVATE_ROOMS": 400,
        "LAB_ROOM_IDLE_EXPIRY_S": 4 * 3600,
        "LAB_ROOM_HOLD_S": 600,
        "LAB_MAX_ROOMS_PER_CLIENT": 6,
        "LAB_MAX_CONNECTIONS_PER_ROOM": 500,
        "LAB_MAX_RECORDS_PER_RUN": 200_000,
        "LAB_MAX_SEND_MORE": 1000,
        "LAB_MAX_UPLOAD_BYTES": 64 * 1024,
        "LAB_MAX_RUN_UPLOAD_BYTES": 512 * 1024,
        "LAB_MAX_REPLAY_STEPS": 1_000_000,
        "LAB_MAX_PLAYING_ROOMS": 4,
        "LAB_MAX_PLAYING_PRIVATE": 2,
        "LAB_MAX_FORKS_RUNNING": 2,
        "LAB_MAX_FORKS_WAITING": 8,
        "LAB_MAX_PRIVATE_ROOMS_PER_CLIENT": 3,
        "LAB_MAX_REPLAYS_RUNNING": 2,
    }
    assert (s["LAB_TICK_MS"], s["LAB_TICK_BUDGET_MS"], s["LAB_RUNTIME_TIMEOUT_S"]) == (50, 8, 10)
    assert s["LAB_RATE_ROOM_CREATE"] == (10, 60.0)
    assert s["LAB_RATE_VOTE"] == (20, 60.0)
    assert s["LAB_RATE_CONTROL"] == (20, 1.0)
    assert s["LAB_RATE_FORK"] == (10, 60.0)
    assert s["LAB_TRUST_X_FORWARDED_FOR"] == 0
    assert s["LAB_RATELIMIT_CACHE"] == "default"


def test_the_request_body_limit_stays_above_the_labs_own(load: Any) -> None:
    assert load()["DATA_UPLOAD_MAX_MEMORY_SIZE"] == 2_621_440
    s = load(LAB_MAX_RUN_UPLOAD_BYTES="4000000")
    assert s["DATA_UPLOAD_MAX_MEMORY_SIZE"] > 4_000_000


def test_lab_sqlite_path_moves_the_default_database(load: Any, tmp_path: Path) -> None:
    s = load(LAB_SQLITE_PATH=str(tmp_path / "lab.sqlite3"))

    assert s["DATABASES"]["default"]["NAME"] == str(tmp_path / "lab.sqlite3")
    assert s["DATABASES"]["default"]["TEST"] == {"NAME": SQLITE_TEST}


def test_empty_variables_read_as_unset(load: Any) -> None:
    s = load(DATABASE_URL="", REDIS_URL=" ", DJANGO_DEBUG="", LAB_MAX_ROOMS="")

    assert s["DATABASES"]["default"]["NAME"] == ROOT / "db.sqlite3"
    assert s["LAB_RUNTIME"] == "embedded"
    assert s["DEBUG"] is True
    assert s["LAB_MAX_ROOMS"] == 32


# -- DATABASE_URL ----------------------------------------------------------------------------------
def test_a_postgres_url(load: Any) -> None:
    url = "postgres://lab:s%40cr%3At@db.internal:6432/delivery_lab?sslmode=require"

    assert load(DATABASE_URL=url)["DATABASES"]["default"] == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "delivery_lab",
        "USER": "lab",
        "PASSWORD": "s@cr:t",
        "HOST": "db.internal",
        "PORT": "6432",
        "CONN_MAX_AGE": 0,
        "OPTIONS": {"sslmode": "require"},
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://db/lab", {"HOST": "db", "PORT": "", "USER": "", "PASSWORD": ""}),
        ("postgres:///lab", {"HOST": "", "PORT": ""}),
        ("postgres://u@%2Fvar%2Frun%2FPostgreSQL/lab", {"HOST": "/var/run/PostgreSQL"}),
        ("postgres://u:p@[2001:db8::7]:5433/lab", {"HOST": "2001:db8::7", "PORT": "5433"}),
        ("POSTGRES://DB.example.org/Lab", {"HOST": "DB.example.org", "NAME": "Lab"}),
        ("postgres://db/lab?conn_max_age=60", {"CONN_MAX_AGE": 60}),
        ("postgres://db/lab?conn_health_checks=1", {"CONN_HEALTH_CHECKS": True}),
    ],
)
def test_postgres_url_variants(load: Any, url: str, expected: dict[str, Any]) -> None:
    database = load(DATABASE_URL=url)["DATABASES"]["default"]

    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert {key: database[key] for key in expected} == expected
    assert "OPTIONS" not in database


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("sqlite:///var/lab.sqlite3", ROOT / "var" / "lab.sqlite3"),
        ("sqlite:////srv/lab/db.sqlite3", Path("/srv/lab/db.sqlite3")),
        ("sqlite:///my%20lab.sqlite3", ROOT / "my lab.sqlite3"),
    ],
)
def test_sqlite_urls(load: Any, url: str, name: Path) -> None:
    assert load(DATABASE_URL=url)["DATABASES"]["default"] == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "TEST": {"NAME": SQLITE_TEST},
        "OPTIONS": {"timeout": 30},
    }


def test_database_url_wins_over_lab_sqlite_path(load: Any, tmp_path: Path) -> None:
    s = load(DATABASE_URL="sqlite:///other.sqlite3", LAB_SQLITE_PATH=str(tmp_path / "x"))

    assert s["DATABASES"]["default"]["NAME"] == ROOT / "other.sqlite3"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://u:p@db/lab", "has the scheme 'mysql'; the lab supports postgres://"),
        ("db.sqlite3", "is not a URL: write postgres://"),
        ("postgres://db.internal", "names no database: end it with /<database name>"),
        ("postgres://db.internal/", "names no database"),
        ("postgres://db.internal:99999/lab", "the port is not a number"),
        ("postgres://db.internal:five/lab", "the port is not a number"),
        ("postgres://db/lab/extra", "the database name cannot contain '/'"),
        ("postgres://[2001:db8::7/lab", "is not a URL"),
        ("postgres://db/lab?conn_max_age=soon", "conn_max_age='soon' is not a number"),
        ("postgres://db/lab?conn_health_checks=maybe", "conn_health_checks='maybe'"),
        ("postgres://db/lab?sslmode", "not key=value pairs"),
        ("sqlite://", "names no SQLite file"),
        ("sqlite:///", "names no SQLite file"),
        ("sqlite:///:memory:", "in-memory SQLite database is not shared"),
        ("sqlite://:memory:", "in-memory SQLite database is not shared"),
        ("sqlite://host/db.sqlite3", "a sqlite URL has no host"),
        ("sqlite:///db.sqlite3?timeout=5", "a sqlite URL takes no options"),
    ],
)
def test_a_bad_database_url_says_what_is_wrong(load: Any, url: str, problem: str) -> None:
    message = refused(load, DATABASE_URL=url)

    assert message.startswith("DATABASE_URL")
    assert problem in message


@pytest.mark.parametrize(
    "url",
    [
        "postgres://lab:hunter2secret@db:port/lab",
        "postgres://lab:hunter2secret@db",
        "mysql://lab:hunter2secret@db/lab",
    ],
)
def test_errors_never_show_the_password(load: Any, url: str) -> None:
    assert "hunter2secret" not in refused(load, DATABASE_URL=url)


def test_the_parser_is_usable_on_its_own() -> None:
    database = settings_module.parse_database_url("postgres://u:p@h:1/n", name="OTHER_URL")

    assert (database["HOST"], database["PORT"], database["NAME"]) == ("h", "1", "n")
    with pytest.raises(ImproperlyConfigured, match=r"^OTHER_URL names no database"):
        settings_module.parse_database_url("postgres://h", name="OTHER_URL")


# -- REDIS_URL and LAB_RUNTIME ---------------------------------------------------------------------
def test_redis_url_switches_the_channel_layer_the_cache_and_the_runtime(load: Any) -> None:
    s = load(REDIS_URL="redis://redis.internal:6379/2")

    layer = s["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    [host] = layer["CONFIG"]["hosts"]
    assert host["address"] == "redis://redis.internal:6379/2"
    assert host["socket_timeout"] > 5  # longer than the layer's blocking receive
    assert layer["CONFIG"]["capacity"] >= 100
    assert layer["CONFIG"]["expiry"] > 0
    cache = s["CACHES"]["default"]
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert cache["LOCATION"] == "redis://redis.internal:6379/2"
    assert s["LAB_RUNTIME"] == "worker"
    assert s["REDIS_URL"] == "redis://redis.internal:6379/2"


@pytest.mark.parametrize(
    "url", ["rediss://:pw@redis.example.org:6380/0", "unix:///run/redis/redis.sock?db=1"]
)
def test_tls_and_socket_redis_urls(load: Any, url: str) -> None:
    assert load(REDIS_URL=url)["CACHES"]["default"]["LOCATION"] == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://redis:6379", "must start with redis://, rediss://"),
        ("redis.internal:6379", "must start with redis://"),
        ("redis://", "names no host"),
        ("redis://redis:port/0", "is not a URL"),
        ("unix://", "names no socket"),
    ],
)
def test_a_bad_redis_url_says_what_is_wrong(load: Any, url: str, problem: str) -> None:
    message = refused(load, REDIS_URL=url)

    assert message.startswith("REDIS_URL")
    assert problem in message


def test_the_runtime_can_stay_embedded_with_redis(load: Any) -> None:
    assert load(REDIS_URL="redis://r:6379/0", LAB_RUNTIME="embedded")["LAB_RUNTIME"] == "embedded"
    assert load(REDIS_URL="redis://r:6379/0", LAB_RUNTIME=" Worker ")["LAB_RUNTIME"] == "worker"


def test_an_unknown_runtime_is_refused(load: Any) -> None:
    message = refused(load, LAB_RUNTIME="threads")

    assert message.startswith("LAB_RUNTIME='threads': use 'embedded'")


def test_the_worker_runtime_needs_redis(load: Any) -> None:
    assert refused(load, LAB_RUNTIME="worker").startswith("LAB_RUNTIME=worker needs REDIS_URL")


def test_the_runtime_timeout_is_a_positive_number_of_seconds(load: Any) -> None:
    assert load(LAB_RUNTIME_TIMEOUT_S="2.5")["LAB_RUNTIME_TIMEOUT_S"] == 2.5
    assert "is not a number of seconds" in refused(load, LAB_RUNTIME_TIMEOUT_S="soon")
    assert "must be positive" in refused(load, LAB_RUNTIME_TIMEOUT_S="0")


# -- limits and rates ------------------------------------------------------------------------------
def test_limits_come_from_the_environment(load: Any) -> None:
    s = load(
        LAB_MAX_ROOMS="5",
        LAB_MAX_PRIVATE_ROOMS="50",
        LAB_ROOM_IDLE_EXPIRY_S="600",
        LAB_MAX_CONNECTIONS_PER_ROOM="80",
        LAB_MAX_RECORDS_PER_RUN="1_000",
        LAB_MAX_UPLOAD_BYTES="1024",
        LAB_MAX_RUN_UPLOAD_BYTES="2048",
    )

    assert (s["LAB_MAX_ROOMS"], s["LAB_MAX_PRIVATE_ROOMS"], s["LAB_ROOM_IDLE_EXPIRY_S"]) == (
        5,
        50,
        600,
    )
    assert (s["LAB_MAX_CONNECTIONS_PER_ROOM"], s["LAB_MAX_RECORDS_PER_RUN"]) == (80, 1000)
    assert (s["LAB_MAX_UPLOAD_BYTES"], s["LAB_MAX_RUN_UPLOAD_BYTES"]) == (1024, 2048)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0", ": the number must be positive."),
        ("-3", ": the number must be positive."),
        ("lots", " is not a whole number."),
        ("2.5", " is not a whole number."),
    ],
)
@pytest.mark.parametrize(
    "name",
    [
        "LAB_MAX_ROOMS",
        "LAB_MAX_PRIVATE_ROOMS",
        "LAB_ROOM_IDLE_EXPIRY_S",
        "LAB_MAX_CONNECTIONS_PER_ROOM",
        "LAB_MAX_RECORDS_PER_RUN",
        "LAB_MAX_UPLOAD_BYTES",
        "LAB_MAX_RUN_UPLOAD_BYTES",
    ],
)
def test_a_limit_must_be_a_positive_whole_number(
    load: Any, name: str, value: str, problem: str
) -> None:
    assert refused(load, **{name: value}) == f"{name}={value!r}{problem}"


def test_rates_come_from_the_environment(load: Any) -> None:
    s = load(
        LAB_RATE_ROOM_CREATE="3/600",
        LAB_RATE_VOTE=" 5 / 30 ",
        LAB_RATE_CONTROL="10/0.5",
        LAB_RATE_FORK="1/1",
    )

    assert s["LAB_RATE_ROOM_CREATE"] == (3, 600.0)
    assert s["LAB_RATE_VOTE"] == (5, 30.0)
    assert s["LAB_RATE_CONTROL"] == (10, 0.5)
    assert s["LAB_RATE_FORK"] == (1, 1.0)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("10", "is not a rate: write N/seconds"),
        ("ten/60", "is not a rate"),
        ("10/minute", "is not a rate"),
        ("0/60", "both the count and the seconds must be positive"),
        ("10/0", "both the count and the seconds must be positive"),
        ("10/-1", "both the count and the seconds must be positive"),
    ],
)
def test_a_bad_rate_says_what_is_wrong(load: Any, value: str, problem: str) -> None:
    message = refused(load, LAB_RATE_VOTE=value)

    assert message.startswith(f"LAB_RATE_VOTE={value!r}")
    assert problem in message


@pytest.mark.parametrize(
    ("value", "proxies"), [("0", 0), ("no", 0), ("1", 1), ("yes", 1), ("true", 1), ("2", 2)]
)
def test_trusting_x_forwarded_for(load: Any, value: str, proxies: int) -> None:
    assert load(LAB_TRUST_X_FORWARDED_FOR=value)["LAB_TRUST_X_FORWARDED_FOR"] == proxies


def test_a_bad_yes_no_value_is_refused(load: Any) -> None:
    assert refused(load, LAB_HTTPS="sure") == "LAB_HTTPS='sure' is not a yes/no value: use 1 or 0."
    assert "is not a whole number" in refused(load, LAB_TRUST_X_FORWARDED_FOR="sure")


# -- production ------------------------------------------------------------------------------------
def test_debug_off_needs_a_secret_key(load: Any) -> None:
    message = refused(load, DJANGO_DEBUG="0")

    assert message.startswith("DJANGO_DEBUG is off but DJANGO_SECRET_KEY is not set")


def test_debug_off_refuses_the_development_key_given_explicitly(load: Any) -> None:
    dev_key = load()["SECRET_KEY"]

    assert "DJANGO_SECRET_KEY" in refused(load, DJANGO_DEBUG="0", DJANGO_SECRET_KEY=dev_key)


def test_a_secret_key_never_appears_in_an_error(load: Any) -> None:
    key = a_secret_key()

    assert key not in refused(load, DJANGO_DEBUG="0", DJANGO_SECRET_KEY=key, LAB_RUNTIME="x")


def test_production_settings(load: Any) -> None:
    key = a_secret_key()
    s = load(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=key,
        LAB_HTTPS="1",
        DJANGO_ALLOWED_HOSTS="lab.example.org, .workshops.example.org",
    )

    assert s["DEBUG"] is False
    assert s["SECRET_KEY"] == key
    assert s["SERVE_STATIC"] is False
    assert s["ALLOWED_HOSTS"] == ["lab.example.org", ".workshops.example.org"]
    assert s["CSRF_TRUSTED_ORIGINS"] == [
        "https://lab.example.org",
        "https://*.workshops.example.org",
    ]
    assert s["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert s["SECURE_SSL_REDIRECT"] is True
    assert s["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert s["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert s["SESSION_COOKIE_SECURE"] is s["CSRF_COOKIE_SECURE"] is True
    assert s["SESSION_COOKIE_HTTPONLY"] is True
    assert s["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert s["X_FRAME_OPTIONS"] == "DENY"
    assert s["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert s["SECURE_REFERRER_POLICY"] == "same-origin"
    assert s["SILENCED_SYSTEM_CHECKS"] == ["security.W021"]


def test_hsts_can_be_tuned_and_preloaded(load: Any) -> None:
    s = load(LAB_HTTPS="1", LAB_HSTS_SECONDS="3600", LAB_HSTS_PRELOAD="1")

    assert (s["SECURE_HSTS_SECONDS"], s["SECURE_HSTS_PRELOAD"]) == (3600, True)
    assert s["SILENCED_SYSTEM_CHECKS"] == []


def test_without_https_origins_are_http_and_nothing_is_silenced(load: Any) -> None:
    s = load(DJANGO_ALLOWED_HOSTS="lab.local,*")

    assert s["CSRF_TRUSTED_ORIGINS"] == ["http://lab.local"]
    assert "SECURE_PROXY_SSL_HEADER" not in s
    assert s["SILENCED_SYSTEM_CHECKS"] == []


def test_trusted_origins_may_be_given(load: Any) -> None:
    s = load(
        DJANGO_ALLOWED_HOSTS="lab.example.org",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://lab.example.org,https://lab.example.org:8443",
    )

    assert s["CSRF_TRUSTED_ORIGINS"] == ["https://lab.example.org", "https://lab.example.org:8443"]
    assert "is not an origin" in refused(load, DJANGO_CSRF_TRUSTED_ORIGINS="lab.example.org")


def test_an_empty_host_list_is_refused(load: Any) -> None:
    assert "DJANGO_ALLOWED_HOSTS lists nothing" in refused(load, DJANGO_ALLOWED_HOSTS=" , ")


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean_env(), "DJANGO_SETTINGS_MODULE": "dashboard.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "LAB_HTTPS": "1",
    "DJANGO_ALLOWED_HOSTS": "lab.example.org",
}


def test_check_deploy_is_clean_with_the_production_settings() -> None:
    result = manage("check", "--deploy", DJANGO_SECRET_KEY=a_secret_key(), **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert "WARNINGS" not in result.stderr + result.stdout
    assert "System check identified no issues (1 silenced)." in result.stdout


def test_check_deploy_warns_when_https_is_off() -> None:
    # The other side of the test above: the warnings are seen when they are there.
    # Long enough, but with too few different characters (W009).
    env = {**PRODUCTION, "LAB_HTTPS": "0", "DJANGO_SECRET_KEY": "x" * 60}
    result = manage("check", "--deploy", "--fail-level", "WARNING", **env)

    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W009", "security.W012"):
        assert check in result.stderr


def test_the_lab_refuses_to_start_without_a_secret_key_when_debug_is_off() -> None:
    result = manage("check", **PRODUCTION)

    assert result.returncode != 0
    assert "DJANGO_DEBUG is off but DJANGO_SECRET_KEY is not set" in result.stderr


# -- real Kafka clients in rooms ------------------------------------------------------------------
def test_kafka_listeners_default_to_this_machine_on_free_ports(load: Any) -> None:
    s = load()

    assert (s["LAB_KAFKA_LISTENERS"], s["LAB_KAFKA_ADDR"], s["LAB_KAFKA_PORT"]) == (
        True,
        "127.0.0.1",
        0,
    )
    assert (s["LAB_KAFKA_MAX_CONNECTIONS"], s["LAB_KAFKA_MAX_ROOMS"]) == (64, 8)


def test_a_kafka_address_or_port_that_cannot_work_is_refused_by_name(load: Any) -> None:
    assert "LAB_KAFKA_ADDR='lab.local' is not an IP address" in refused(
        load, LAB_KAFKA_ADDR="lab.local"
    )
    assert "LAB_KAFKA_PORT=65535: broker-N listens on PORT+N-1" in refused(
        load, LAB_KAFKA_PORT="65535"
    )
    assert "LAB_KAFKA_PORT='-1': the number must be at least 0" in refused(
        load, LAB_KAFKA_PORT="-1"
    )
