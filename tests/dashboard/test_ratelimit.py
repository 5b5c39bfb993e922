"""Rate limits (dashboard/workshops/ratelimit.py): counting, windows, isolation, the client's
address.

Most tests count in a local-memory cache of their own with a clock they move by hand; the last
section runs against a real Redis when redis-server is installed (started on a free port).
"""

from __future__ import annotations

import asyncio
import logging
import os
import runpy
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.test import RequestFactory
from django.test.utils import override_settings

from dashboard import settings as settings_module
from dashboard.workshops import ratelimit
from tests.conftest import NEEDS_REDIS

START = 6000.0  # a multiple of 60 and of 1: windows of both start here


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def local_cache(name: str) -> dict[str, Any]:
    return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": name}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ratelimit, "clock", fake)
    return fake


@pytest.fixture
def limiter(clock: Clock, request: pytest.FixtureRequest) -> Iterator[Clock]:
    """A fresh local-memory cache for the counters, and the fake clock."""
    config = {"default": local_cache("default"), "limits": local_cache(request.node.name)}
    with override_settings(CACHES=config, LAB_RATELIMIT_CACHE="limits"):
        ratelimit.reset()
        yield clock
        ratelimit.reset()


# -- counting ------------------------------------------------------------------------------------
def test_n_hits_are_allowed_then_the_rest_of_the_window_is_refused(limiter: Clock) -> None:
    decisions = [ratelimit.check("room", "10.0.0.1", (3, 60)) for _ in range(5)]

    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert not decisions[3]
    assert decisions[0]


def test_a_refusal_says_when_to_try_again(limiter: Clock) -> None:
    for _ in range(2):
        ratelimit.check("room", "10.0.0.1", (2, 60))
    limiter.now = START + 17.5

    refused = ratelimit.check("room", "10.0.0.1", (2, 60))

    assert refused.retry_after == pytest.approx(42.5)
    assert refused.retry_after_s == 43
    assert ratelimit.retry_after((2, 60)) == 43
    message = f"Too many room creations from your address: try again in {refused.retry_after_s} s."
    assert message == "Too many room creations from your address: try again in 43 s."


def test_an_allowed_hit_has_nothing_to_wait_for(limiter: Clock) -> None:
    allowed = ratelimit.check("room", "10.0.0.1", (2, 60))

    assert (allowed.retry_after, allowed.retry_after_s) == (0.0, 0)


def test_the_last_moment_of_a_window_still_waits_a_whole_second(limiter: Clock) -> None:
    ratelimit.check("control", "chan", (1, 1))
    limiter.now = START + 0.999

    assert ratelimit.check("control", "chan", (1, 1)).retry_after_s == 1


def test_a_new_window_starts_a_new_count(limiter: Clock) -> None:
    assert [ratelimit.allow("vote", "voter", (2, 60)) for _ in range(3)] == [True, True, False]

    limiter.now = START + 59.9
    assert not ratelimit.allow("vote", "voter", (2, 60))
    limiter.now = START + 60
    assert [ratelimit.allow("vote", "voter", (2, 60)) for _ in range(3)] == [True, True, False]


def test_windows_are_aligned_on_the_clock_not_on_the_first_hit(limiter: Clock) -> None:
    limiter.now = START + 50
    assert [ratelimit.allow("fork", "a", (1, 60)) for _ in range(2)] == [True, False]

    limiter.now = START + 61  # eleven seconds later: the next window
    assert ratelimit.allow("fork", "a", (1, 60))
    assert ratelimit.window((1, 60)) == (START // 60 + 1, START + 120)


def test_fractional_windows(limiter: Clock) -> None:
    assert [ratelimit.allow("control", "c", (2, 0.5)) for _ in range(3)] == [True, True, False]
    limiter.now = START + 0.5
    assert ratelimit.allow("control", "c", (2, 0.5))


def test_scopes_and_keys_count_apart(limiter: Clock) -> None:
    for _ in range(2):
        ratelimit.check("room", "10.0.0.1", (2, 60))

    assert not ratelimit.allow("room", "10.0.0.1", (2, 60))
    assert ratelimit.allow("room", "10.0.0.2", (2, 60))
    assert ratelimit.allow("fork", "10.0.0.1", (2, 60))


def test_a_different_rate_for_the_same_scope_counts_apart(limiter: Clock) -> None:
    for _ in range(2):
        ratelimit.check("room", "k", (2, 60))

    # A rate changed by configuration does not inherit a count cut for another window length.
    assert ratelimit.allow("room", "k", (2, 30))


def test_a_rate_may_be_written_n_per_seconds(limiter: Clock) -> None:
    assert [ratelimit.allow("vote", "v", "2/60") for _ in range(3)] == [True, True, False]
    assert ratelimit.parse_rate("20/1") == (20, 1.0)
    assert ratelimit.parse_rate([5, "0.5"]) == (5, 0.5)


@pytest.mark.parametrize("rate", ["10", "0/60", "10/0", "a/b", (1,), (1, -1), None, "1/inf"])
def test_a_bad_rate_is_refused_before_counting(limiter: Clock, rate: Any) -> None:
    with pytest.raises(ValueError, match="rate"):
        ratelimit.check("room", "k", rate)


@pytest.mark.parametrize("scope", ["", "has space", "x" * 41, "a:b", "é"])
def test_a_scope_is_a_short_fixed_word(limiter: Clock, scope: str) -> None:
    with pytest.raises(ValueError, match="scope"):
        ratelimit.check(scope, "k", (1, 60))


def test_keys_are_hashed_into_short_cache_keys(limiter: Clock, monkeypatch: Any) -> None:
    seen: list[str] = []
    cache = caches["limits"]
    real_add = cache.add

    def spy_add(key: str, *args: Any, **kwargs: Any) -> bool:
        seen.append(cache.make_key(key))
        return real_add(key, *args, **kwargs)

    monkeypatch.setattr(cache, "add", spy_add)
    long_key = "sess-" + "x" * 5000 + " \n\x00 ünïcode"

    assert ratelimit.allow("vote", long_key, (1, 60))
    assert not ratelimit.allow("vote", long_key, (1, 60))
    assert ratelimit.allow("vote", long_key[:-1], (1, 60))  # a different key, a different count
    assert len(seen) == 2
    assert all(len(key) < 100 and key.isascii() and " " not in key for key in seen)
    assert "xxxx" not in seen[0]


def test_a_known_refusal_does_not_touch_the_cache(limiter: Clock, monkeypatch: Any) -> None:
    ratelimit.check("control", "chan", (1, 1))
    ratelimit.check("control", "chan", (1, 1))  # the refusal that is remembered
    cache = caches["limits"]

    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the cache was asked")

    monkeypatch.setattr(cache, "incr", fail)
    monkeypatch.setattr(cache, "add", fail)

    assert not any(ratelimit.allow("control", "chan", (1, 1)) for _ in range(1000))


def test_the_memory_of_refusals_stays_bounded(limiter: Clock, monkeypatch: Any) -> None:
    monkeypatch.setattr(ratelimit, "REFUSED_MEMO_MAX", 50)
    for index in range(200):
        ratelimit.check("vote", f"voter-{index}", (1, 60))
        ratelimit.check("vote", f"voter-{index}", (1, 60))

    assert len(ratelimit._refused) <= 50
    # Forgotten refusals are still refusals: the cache has the count.
    assert not ratelimit.allow("vote", "voter-0", (1, 60))


def test_a_failing_cache_lets_hits_through_and_warns_once(
    limiter: Clock, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cache = caches["limits"]

    def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "incr", down)
    monkeypatch.setattr(cache, "add", down)

    with caplog.at_level(logging.WARNING, logger="dashboard.workshops.ratelimit"):
        assert all(ratelimit.allow("room", "k", (1, 60)) for _ in range(5))

    assert [r.getMessage() for r in caplog.records] == ["rate limits are off: the cache failed"]


def test_reset_forgets_every_count(limiter: Clock) -> None:
    ratelimit.check("room", "k", (1, 60))
    assert not ratelimit.allow("room", "k", (1, 60))

    ratelimit.reset()

    assert ratelimit.allow("room", "k", (1, 60))


def test_the_default_cache_is_used_unless_told_otherwise(clock: Clock) -> None:
    with override_settings(CACHES={"default": local_cache("rl-default-test")}):
        ratelimit.reset()
        assert [ratelimit.allow("room", "k", (1, 60)) for _ in range(2)] == [True, False]
        assert caches["default"].get(ratelimit._prepare("room", "k", (1, 60), None).cache_key)
        ratelimit.reset()


def test_any_django_cache_works_a_file_based_one_too(clock: Clock, tmp_path: Path) -> None:
    files = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache"}
    config = {"default": local_cache("default"), "limits": {**files, "LOCATION": str(tmp_path)}}
    with override_settings(CACHES=config, LAB_RATELIMIT_CACHE="limits"):
        ratelimit.reset()
        assert [ratelimit.allow("room", "k", (2, 60)) for _ in range(3)] == [True, True, False]
        ratelimit.reset()


# -- async -----------------------------------------------------------------------------------------
async def test_the_async_api_counts_the_same_way(limiter: Clock) -> None:
    decisions = [await ratelimit.acheck("control", "chan-1", (2, 1)) for _ in range(3)]

    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[-1].retry_after_s == 1
    assert await ratelimit.aallow("control", "chan-2", (2, 1))
    limiter.now = START + 1
    assert await ratelimit.aallow("control", "chan-1", (2, 1))


async def test_sync_and_async_share_the_count(limiter: Clock) -> None:
    assert await ratelimit.aallow("vote", "v", (2, 60))
    assert ratelimit.allow("vote", "v", (2, 60))
    assert not await ratelimit.aallow("vote", "v", (2, 60))


async def test_the_async_api_runs_other_caches_off_the_event_loop(
    clock: Clock, tmp_path: Path
) -> None:
    files = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache"}
    config = {"default": local_cache("default"), "limits": {**files, "LOCATION": str(tmp_path)}}
    with override_settings(CACHES=config, LAB_RATELIMIT_CACHE="limits"):
        ratelimit.reset()
        results = [await ratelimit.aallow("room", "k", (2, 60)) for _ in range(3)]
        ratelimit.reset()

    assert results == [True, True, False]


# -- the client's address --------------------------------------------------------------------------
def request_from(remote: str = "203.0.113.7", forwarded: str | None = None) -> Any:
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def asgi_scope(client: tuple[str, int] | None, forwarded: str | None = None) -> dict[str, Any]:
    headers = [(b"host", b"lab.example.org")]
    if forwarded is not None:
        headers.append((b"X-Forwarded-For", forwarded.encode()))
    return {"type": "websocket", "client": client, "headers": headers}


def test_the_address_is_the_tcp_peer_by_default() -> None:
    assert ratelimit.client_ip(request_from("203.0.113.7", "198.51.100.1")) == "203.0.113.7"
    assert ratelimit.client_ip(asgi_scope(("203.0.113.8", 5555), "198.51.100.1")) == "203.0.113.8"


def test_a_consumer_is_read_through_its_scope() -> None:
    class Consumer:
        scope = asgi_scope(("2001:db8::5", 443))

    assert ratelimit.client_ip(Consumer()) == "2001:db8::5"


def test_no_address_reads_unknown() -> None:
    assert ratelimit.client_ip(asgi_scope(None)) == "unknown"
    assert ratelimit.client_ip(request_from("")) == "unknown"
    assert ratelimit.client_ip({"type": "websocket"}) == "unknown"


def test_an_ipv4_mapped_address_is_its_ipv4_address() -> None:
    assert ratelimit.client_ip(asgi_scope(("::ffff:192.0.2.1", 1))) == "192.0.2.1"


@override_settings(LAB_TRUST_X_FORWARDED_FOR=1)
def test_behind_one_proxy_the_address_it_appended_counts() -> None:
    # The client wrote "1.1.1.1" itself; our proxy appended the address it saw.
    assert ratelimit.client_ip(request_from("10.0.0.2", "1.1.1.1, 198.51.100.9")) == (
        "198.51.100.9"
    )
    assert ratelimit.client_ip(asgi_scope(("10.0.0.2", 80), "198.51.100.9")) == "198.51.100.9"


@override_settings(LAB_TRUST_X_FORWARDED_FOR=2)
def test_behind_two_proxies_the_second_address_from_the_right_counts() -> None:
    chain = "1.1.1.1, 198.51.100.9, 10.0.0.3"

    assert ratelimit.client_ip(request_from("10.0.0.2", chain)) == "198.51.100.9"
    # Fewer addresses than proxies: the header is not ours, the peer counts.
    assert ratelimit.client_ip(request_from("10.0.0.2", "198.51.100.9")) == "10.0.0.2"


@override_settings(LAB_TRUST_X_FORWARDED_FOR=True)
def test_forwarded_addresses_lose_their_ports_and_junk_falls_back_to_the_peer() -> None:
    assert ratelimit.client_ip(request_from("10.0.0.2", "198.51.100.9:4711")) == "198.51.100.9"
    assert ratelimit.client_ip(request_from("10.0.0.2", "[2001:db8::1]:443")) == "2001:db8::1"
    assert ratelimit.client_ip(request_from("10.0.0.2", "not-an-address")) == "10.0.0.2"
    assert ratelimit.client_ip(request_from("10.0.0.2", "")) == "10.0.0.2"


@override_settings(LAB_TRUST_X_FORWARDED_FOR=0)
def test_forwarded_for_is_ignored_when_not_trusted() -> None:
    assert ratelimit.client_ip(request_from("10.0.0.2", "198.51.100.9")) == "10.0.0.2"


def test_an_ipv6_client_is_limited_by_its_slash_64() -> None:
    one = ratelimit.client_key(asgi_scope(("2001:db8:1:2:aaaa::1", 1)))
    other = ratelimit.client_key(asgi_scope(("2001:db8:1:2:bbbb::9", 1)))

    assert one == other == "2001:db8:1:2::/64"
    assert ratelimit.client_key(request_from("203.0.113.7")) == "203.0.113.7"


# -- against a real Redis --------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(NEEDS_REDIS)
    port = _free_port()
    server = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


def redis_cache(url: str, prefix: str) -> dict[str, Any]:
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": prefix,
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }


@pytest.fixture
def on_redis(redis_url: str, clock: Clock, request: pytest.FixtureRequest) -> Iterator[Clock]:
    prefix = request.node.name
    config = {"default": redis_cache(redis_url, prefix), "other": redis_cache(redis_url, prefix)}
    with override_settings(CACHES=config):
        ratelimit.reset()
        yield clock
        ratelimit.reset()


def test_redis_counts_and_refuses(on_redis: Clock) -> None:
    decisions = [ratelimit.check("room", "10.0.0.1", (3, 60)) for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after_s == 60
    on_redis.now = START + 60
    assert ratelimit.allow("room", "10.0.0.1", (3, 60))


def test_redis_counters_expire_after_their_window(on_redis: Clock, redis_url: str) -> None:
    import redis

    ratelimit.check("vote", "v", (5, 30))
    client = redis.Redis.from_url(redis_url)
    [key] = client.keys(f"{caches['default'].key_prefix}:*:rl:vote:*")

    assert int(client.get(key)) == 1
    assert 0 < client.ttl(key) <= 31


def test_redis_shares_the_count_between_processes(on_redis: Clock) -> None:
    assert ratelimit.allow("room", "k", (2, 60))
    # Another process: a cache client of its own, and no memory of this one's refusals.
    with override_settings(LAB_RATELIMIT_CACHE="other"):
        assert ratelimit.allow("room", "k", (2, 60))
        assert not ratelimit.allow("room", "k", (2, 60))
    ratelimit._refused.clear()
    assert not ratelimit.allow("room", "k", (2, 60))


async def test_redis_with_the_async_api(on_redis: Clock) -> None:
    results = [await ratelimit.aallow("control", "chan", (2, 1)) for _ in range(3)]

    assert results == [True, True, False]


def test_redis_falls_back_to_djangos_public_api(on_redis: Clock, monkeypatch: Any) -> None:
    monkeypatch.setattr(ratelimit, "_count_redis", lambda cache, hit: None)

    assert [ratelimit.allow("fork", "k", (1, 60)) for _ in range(2)] == [True, False]


def test_an_unreachable_redis_lets_hits_through(clock: Clock) -> None:
    config = {"default": redis_cache(f"redis://127.0.0.1:{_free_port()}/0", "gone")}
    with override_settings(CACHES=config):
        ratelimit.reset()
        assert all(ratelimit.allow("room", "k", (1, 60)) for _ in range(3))
        ratelimit.reset()


def settings_layer(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The channel layer dashboard/settings.py configures for REDIS_URL=redis_url."""
    from channels_redis.core import RedisChannelLayer

    for name in list(os.environ):
        if name.startswith(("LAB_", "DJANGO_")) or name in {"DATABASE_URL", "REDIS_URL"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("REDIS_URL", redis_url)
    layers = runpy.run_path(settings_module.__file__)["CHANNEL_LAYERS"]
    assert layers["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    return RedisChannelLayer(**layers["default"]["CONFIG"])


async def test_the_settings_channel_layer_works_against_redis(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = settings_layer(redis_url, monkeypatch)
    channel = await layer.new_channel("test.")
    await layer.send(channel, {"type": "lab.frame", "seq": 1})

    assert await layer.receive(channel) == {"type": "lab.frame", "seq": 1}
    await layer.flush()


async def test_a_receive_waits_past_five_quiet_seconds(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-py 8 reads with a 5 s socket timeout by default; the layer's blocking receive
    # (BZPOPMIN, 5 s) then failed with "Timeout reading from ..." on any quiet channel, which
    # stopped the runtime worker and every relay (channels_redis issue 422).
    layer = settings_layer(redis_url, monkeypatch)
    channel = await layer.new_channel("test.")
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(6)
    assert not receiving.done()  # still waiting, not failed
    await layer.send(channel, {"type": "lab.frame", "seq": 2})

    assert await asyncio.wait_for(receiving, 5) == {"type": "lab.frame", "seq": 2}
    await layer.flush()
