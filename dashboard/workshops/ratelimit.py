"""Rate limits counted in Django's cache: shared by every web process when the cache is Redis.

Usage, from a sync view, an async view or a Channels consumer::

    decision = ratelimit.check("room", ratelimit.client_key(request), settings.LAB_RATE_ROOM_CREATE)
    if not decision:  # or: if not decision.allowed
        wait = decision.retry_after_s
        return f"Too many room creations from your address: try again in {wait} s."

    if not await ratelimit.aallow("control", self.channel_name, settings.LAB_RATE_CONTROL):
        return  # drop the control

A *scope* names what is limited (``"room"``, ``"vote"``: short, fixed words); a *key* says whose
count it is (an address, a session's voter id, a channel name: any string, hashed here); a
*rate* is ``(N, seconds)``, as the ``LAB_RATE_*`` settings hold, or the string ``"N/seconds"``.

Fixed windows. Time is cut into windows of ``seconds``, aligned on the epoch (so every process
agrees on them without talking), and each (scope, key) has one counter per window: the first N
hits of a window are allowed, the rest refused until the window ends, and the refusal says when
that is. A fixed window is one atomic increment per hit (the ``INCR`` of Redis), which is why it
was chosen over a sliding window (several reads and writes per hit, or a sorted set per key); its
known cost is that a client may get up to 2N hits through across a window boundary (N at the end
of one window, N at the start of the next), which is fine for limits meant to stop floods, not
to meter.

Refusals are cheap: once a counter is past its limit, this process remembers it until the window
ends (a dictionary lookup, no cache round trip and, for ``acheck``, no thread hop), so a client
hammering a WebSocket costs nothing more than the first refusal.

If the cache fails (Redis down), the limiter fails open: it allows and logs a warning. Limits
protect the lab from floods; they must not take it down with them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import BaseCache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)

Rate = tuple[int, float]

# The wall clock the windows are cut from (tests replace it). Wall time, not monotonic: every
# process, on every machine, must cut the same windows.
clock: Callable[[], float] = time.time

KEY_PREFIX = "rl"
_SCOPE = re.compile(r"[A-Za-z0-9_.-]{1,40}\Z")
# Counters known to be past their limit in this process: cache key -> end of its window.
_refused: dict[str, float] = {}
_refused_lock = threading.Lock()
REFUSED_MEMO_MAX = 10_000
# Warn about a failing cache at most this often.
_WARN_EVERY_S = 60.0
_warned_at = -math.inf


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one hit; true when allowed."""

    allowed: bool
    limit: int
    # Hits counted in this window, this one included (for a refusal: at least limit + 1).
    count: int
    # When the window ends (``clock()`` time), and the time of the hit.
    reset_at: float
    now: float

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def remaining(self) -> int:
        """Hits still allowed in this window."""
        return max(0, self.limit - self.count)

    @property
    def retry_after(self) -> float:
        """Seconds until a refused client may try again (0.0 when allowed)."""
        return 0.0 if self.allowed else max(0.0, self.reset_at - self.now)

    @property
    def retry_after_s(self) -> int:
        """``retry_after`` in whole seconds, rounded up: at least 1 for a refusal."""
        return 0 if self.allowed else max(1, math.ceil(self.reset_at - self.now))


def parse_rate(rate: Rate | str | Any) -> Rate:
    """``(N, seconds)`` from a tuple (or list) or an ``"N/seconds"`` string; ValueError if bad."""
    if isinstance(rate, str):
        count, slash, seconds = rate.strip().partition("/")
        if not slash:
            raise ValueError(f"rate {rate!r} is not N/seconds")
        rate = (count, seconds)
    try:
        count, seconds = rate
        limit, period = int(count), float(seconds)
    except (TypeError, ValueError):
        raise ValueError(f"rate {rate!r} is not (N, seconds)") from None
    if limit < 1 or not 0 < period < math.inf:
        raise ValueError(f"rate {rate!r}: N and seconds must be positive")
    return limit, period


def window(rate: Rate | str, *, now: float | None = None) -> tuple[int, float]:
    """The current window of ``rate``: its number and when it ends."""
    _limit, period = parse_rate(rate)
    now = clock() if now is None else now
    index = math.floor(now / period)
    return index, (index + 1) * period


def retry_after(rate: Rate | str, *, now: float | None = None) -> int:
    """Whole seconds (at least 1) until the current window of ``rate`` ends.

    What a refused client waits; the same as ``Decision.retry_after_s`` of a refusal, for
    callers that only kept the boolean of ``allow``.
    """
    now = clock() if now is None else now
    _index, end = window(rate, now=now)
    return max(1, math.ceil(end - now))


# -- counting ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Hit:
    limit: int
    cache_key: str
    reset_at: float
    now: float
    ttl: int


def _prepare(scope: str, key: str, rate: Rate | str, now: float | None) -> _Hit:
    if not _SCOPE.match(scope):
        raise ValueError(f"rate-limit scope {scope!r}: use 1 to 40 letters, digits, _ . -")
    limit, period = parse_rate(rate)
    now = clock() if now is None else now
    index = math.floor(now / period)
    reset_at = (index + 1) * period
    # Any key (an IPv6 address, a session key, a channel name) makes a short, safe cache key.
    digest = hashlib.blake2b(str(key).encode("utf-8", "surrogatepass"), digest_size=16)
    cache_key = f"{KEY_PREFIX}:{scope}:{period:g}:{digest.hexdigest()}:{index}"
    # Outlives the window by a little (whole seconds: Redis truncates fractions to 0, which
    # would delete the key); the next window counts under another key anyway.
    ttl = math.ceil(reset_at - now) + 1
    return _Hit(limit, cache_key, reset_at, now, ttl)


def _known_refusal(hit: _Hit) -> Decision | None:
    if hit.cache_key in _refused:
        return Decision(False, hit.limit, hit.limit + 1, hit.reset_at, hit.now)
    return None


def _decide(hit: _Hit, count: int | None) -> Decision:
    if count is None:  # the cache failed: allow
        return Decision(True, hit.limit, 0, hit.reset_at, hit.now)
    decision = Decision(count <= hit.limit, hit.limit, count, hit.reset_at, hit.now)
    if not decision.allowed:
        _remember_refusal(hit)
    return decision


def _remember_refusal(hit: _Hit) -> None:
    with _refused_lock:
        if len(_refused) >= REFUSED_MEMO_MAX:
            for cache_key, reset_at in list(_refused.items()):
                if reset_at <= hit.now:
                    del _refused[cache_key]
            if len(_refused) >= REFUSED_MEMO_MAX:
                _refused.clear()
        _refused[hit.cache_key] = hit.reset_at


def _cache() -> BaseCache:
    return caches[getattr(settings, "LAB_RATELIMIT_CACHE", "default")]


def _count(cache: BaseCache, hit: _Hit) -> int | None:
    """Add one to the counter and return it; None (and a warning) if the cache failed."""
    global _warned_at
    try:
        if isinstance(cache, RedisCache):
            count = _count_redis(cache, hit)
            if count is not None:
                return count
        return _count_generic(cache, hit)
    except Exception:
        if hit.now - _warned_at >= _WARN_EVERY_S:
            _warned_at = hit.now
            logger.warning("rate limits are off: the cache failed", exc_info=True)
        return None


def _count_redis(cache: RedisCache, hit: _Hit) -> int | None:
    """One round trip: INCR and EXPIRE in a MULTI. None if Django's client is not as expected."""
    try:
        full_key = cache.make_and_validate_key(hit.cache_key)
        client = cache._cache.get_client(full_key, write=True)
    except AttributeError:  # Django's private RedisCacheClient changed: use the public API
        return None
    pipe = client.pipeline(transaction=True)
    pipe.incr(full_key)
    pipe.expire(full_key, hit.ttl)
    count, _ = pipe.execute()
    return int(count)


def _count_generic(cache: BaseCache, hit: _Hit) -> int:
    """Any Django cache: incr, or add on the window's first hit (atomic in local memory)."""
    try:
        return int(cache.incr(hit.cache_key))
    except ValueError:  # no counter yet in this window
        pass
    if cache.add(hit.cache_key, 1, hit.ttl):
        return 1
    try:  # another process added it first
        return int(cache.incr(hit.cache_key))
    except ValueError:  # and it expired since: count this hit alone
        cache.set(hit.cache_key, 1, hit.ttl)
        return 1


# -- the API -------------------------------------------------------------------------------------
def check(scope: str, key: str, rate: Rate | str, *, now: float | None = None) -> Decision:
    """Count one hit of ``key`` in ``scope`` and decide; for sync code (views, commands)."""
    hit = _prepare(scope, key, rate, now)
    known = _known_refusal(hit)
    if known is not None:
        return known
    return _decide(hit, _count(_cache(), hit))


async def acheck(scope: str, key: str, rate: Rate | str, *, now: float | None = None) -> Decision:
    """``check`` for async code (async views, consumers): the cache call runs off the loop."""
    hit = _prepare(scope, key, rate, now)
    known = _known_refusal(hit)
    if known is not None:
        return known
    cache = _cache()
    if isinstance(cache, LocMemCache):  # memory and a lock: no need for a thread
        count = _count(cache, hit)
    else:
        # Django's own async cache methods are not atomic (aincr is a get then a set).
        count = await sync_to_async(_count, thread_sensitive=False)(cache, hit)
    return _decide(hit, count)


def peek(scope: str, key: str, rate: Rate | str, *, now: float | None = None) -> Decision:
    """Would the next hit be refused? Counts nothing (``count`` is the hits so far).

    For limits on failures: peek before the attempt (a client past the limit is refused even
    if this attempt would succeed), count with ``check`` only when it fails.
    """
    hit = _prepare(scope, key, rate, now)
    known = _known_refusal(hit)
    if known is not None:
        return known
    try:
        count = int(_cache().get(hit.cache_key) or 0)
    except Exception:  # the cache failed: allow, as counting does
        count = 0
    return Decision(count < hit.limit, hit.limit, count, hit.reset_at, hit.now)


def allow(scope: str, key: str, rate: Rate | str, *, now: float | None = None) -> bool:
    """True if this hit is within the rate (and counted); see ``check`` for the details."""
    return check(scope, key, rate, now=now).allowed


async def aallow(scope: str, key: str, rate: Rate | str, *, now: float | None = None) -> bool:
    return (await acheck(scope, key, rate, now=now)).allowed


def reset() -> None:
    """Forget every count: this process's memory of refusals, and a local-memory cache.

    For tests. A shared (Redis) cache is left alone: clearing it would flush the channel
    layer's data too.
    """
    global _warned_at
    with _refused_lock:
        _refused.clear()
    _warned_at = -math.inf
    cache = _cache()
    if isinstance(cache, LocMemCache):
        cache.clear()


# -- who is asking -------------------------------------------------------------------------------
def _trusted_proxies() -> int:
    value = getattr(settings, "LAB_TRUST_X_FORWARDED_FOR", 0)
    if isinstance(value, str):
        value = value.strip().lower()
        value = 1 if value in {"true", "yes", "on"} else int(value) if value.isdigit() else 0
    return max(0, int(value or 0))


def _address(text: str) -> str | None:
    """The IP address in ``text`` ("1.2.3.4", "1.2.3.4:80", "[::1]:80", "::1"), normalized."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.partition("%")[0])  # without an IPv6 zone
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def client_ip(request_or_scope: Any) -> str:
    """The client's IP address, from a Django request, an ASGI scope or a Channels consumer.

    The TCP peer (``REMOTE_ADDR``, ``scope["client"]``), unless ``LAB_TRUST_X_FORWARDED_FOR``
    is N > 0: then the Nth address from the right of X-Forwarded-For, the one the outermost of
    our N proxies saw (each proxy appends its peer; whatever a client wrote itself stays on the
    left). "unknown" when there is no address (a Unix socket, a test without one).
    """
    meta = getattr(request_or_scope, "META", None)
    if isinstance(meta, dict):  # a Django request, WSGI or ASGI
        peer = str(meta.get("REMOTE_ADDR") or "")
        forwarded = str(meta.get("HTTP_X_FORWARDED_FOR") or "")
    else:
        scope = getattr(request_or_scope, "scope", request_or_scope)  # a consumer has .scope
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        forwarded = ",".join(
            value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name.lower() == b"x-forwarded-for"
        )
    proxies = _trusted_proxies()
    if proxies > 0 and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= proxies:
            address = _address(hops[-proxies])
            if address is not None:
                return address
    return _address(peer) or "unknown"


def client_key(request_or_scope: Any) -> str:
    """The key to limit a client's address by: its IPv4 address, or its IPv6 /64.

    One IPv6 subscriber usually holds a whole /64, so limiting single IPv6 addresses would let
    anyone walk around the limit.
    """
    ip = client_ip(request_or_scope)
    if ":" not in ip:
        return ip
    network = ipaddress.ip_network(f"{ip}/64", strict=False)
    return str(network)
