"""Client-side rate limits for one LLM endpoint: requests per minute and tokens per minute.

Both limiters keep a sliding *log* (one entry per admitted request) rather than a token bucket
or fixed windows, because providers enforce "at most N in any minute" and a bucket or a fixed
window can admit up to twice that across a boundary. With a log the guarantee is exact: in
every interval of length `window` at most `rpm` requests (and `tpm` tokens) are admitted.

One exception, by necessity: a single request whose own token estimate exceeds `tpm` could
never fit. Rather than deadlock, it is admitted alone once the token log is empty; the
endpoint will then most likely answer 429, which the gateway handles like any other.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["RateLimiter", "RedisWindowLimiter", "WindowLimiter"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]

# Shortest sleep between re-checks. It keeps float rounding (now + wait landing a hair before
# the entry leaves) from becoming a busy loop, or an endless one under a fake clock.
MIN_SLEEP = 1e-4


class RateLimiter(Protocol):
    async def acquire(self, tokens: int) -> None:
        """Wait until one more request carrying `tokens` tokens fits, then record it."""
        ...


def _check_limits(rpm: int | None, tpm: int | None, window: float) -> None:
    for name, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer or None, not {value!r}")
    if not window > 0:
        raise ValueError(f"window must be positive, not {window!r}")


@dataclass(frozen=True)
class _Entry:
    at: float
    tokens: int


class WindowLimiter:
    """In-process sliding-log limiter (one event loop; use `RedisWindowLimiter` across processes).

    Waiters are served first come, first served: an `asyncio.Lock` (FIFO) is held while the
    head of the queue sleeps, so a large request is not starved by a stream of small ones.
    That costs nothing in throughput, since the head is waiting for capacity nobody else
    could use before it anyway (except smaller requests under a token limit: a deliberate trade).
    """

    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        *,
        window: float = 60.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        _check_limits(rpm, tpm, window)
        self.rpm, self.tpm, self.window = rpm, tpm, window
        self._clock, self._sleep = clock, sleep
        self._log: deque[_Entry] = deque()
        self._tokens_in_log = 0
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> None:
        """Wait for room for one request of `tokens` tokens (>= 0), then record it."""
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        if self.rpm is None and self.tpm is None:
            return
        async with self._lock:
            while True:
                now = self._clock()
                wait = self._wait_time(now, tokens)
                if wait <= 0:
                    self._log.append(_Entry(now, tokens))
                    self._tokens_in_log += tokens
                    return
                await self._sleep(max(wait, MIN_SLEEP))

    def _wait_time(self, now: float, tokens: int) -> float:
        """Seconds until the request fits (<= 0: it fits now). Drops entries that left."""
        log = self._log
        while log and log[0].at <= now - self.window:
            self._tokens_in_log -= log.popleft().tokens
        wait = 0.0
        if self.rpm is not None and len(log) >= self.rpm:
            # The entry whose departure leaves rpm - 1 requests in the window.
            wait = log[len(log) - self.rpm].at + self.window - now
        if self.tpm is not None and log and self._tokens_in_log + tokens > self.tpm:
            # Oldest entries leave first; find the one after which the request fits (all of
            # them for an oversized request, which then goes through alone).
            excess = self._tokens_in_log + tokens - self.tpm
            freed = 0
            for entry in log:
                freed += entry.tokens
                if freed >= excess:
                    break
            wait = max(wait, entry.at + self.window - now)
        return wait


# KEYS[1]: sorted set of admitted requests (member "<unique id>:<tokens>", score = time)
# KEYS[2]: running total of the tokens in KEYS[1]
# ARGV: now, window, rpm (0 = none), tpm (0 = none), tokens, member, ttl in ms
# Returns "0" when admitted, else the seconds to wait as a string (Lua numbers would be
# truncated to integers on the way back).
_ACQUIRE_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local tokens = tonumber(ARGV[5])
-- Numbers passed to redis.call are formatted with 14 significant digits (0.1 ms at Unix
-- time scale), so pass the cutoff and the score as full-precision strings.
local cutoff = string.format('%.17g', now - window)

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
if #expired > 0 then
  local freed = 0
  for _, member in ipairs(expired) do
    freed = freed + tonumber(string.match(member, ':(%d+)$'))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
  redis.call('DECRBY', KEYS[2], freed)
end

local count = redis.call('ZCARD', KEYS[1])
local used = 0
if count == 0 then
  redis.call('SET', KEYS[2], 0)
else
  used = tonumber(redis.call('GET', KEYS[2]) or '0')
end

local wait = 0
if rpm > 0 and count >= rpm then
  local entry = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
  wait = tonumber(entry[2]) + window - now
end
if tpm > 0 and count > 0 and used + tokens > tpm then
  local excess = used + tokens - tpm
  local freed = 0
  local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  local leaves = now
  for i = 1, #entries, 2 do
    freed = freed + tonumber(string.match(entries[i], ':(%d+)$'))
    leaves = tonumber(entries[i + 1]) + window
    if freed >= excess then break end
  end
  wait = math.max(wait, leaves - now)
end
if wait > 0 then
  return tostring(wait)
end

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[6])
redis.call('INCRBY', KEYS[2], tokens)
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return '0'
"""


class RedisWindowLimiter:
    """The sliding log of `WindowLimiter`, shared by every process using the same `key`.

    Each check-and-record is one Lua script, so it is atomic across workers. `key` is the
    caller's prefix (e.g. `rubricstudio:rl:<endpoint-id>`); the script uses `<key>:log` and
    `<key>:tokens`, and both expire `2 * window` after the last admission.

    `redis_client` may be a `redis.asyncio.Redis` (awaited directly; create it in the event
    loop that uses it) or a plain `redis.Redis` (each script call runs in a thread).
    Times come from `clock` in each process, so workers on different hosts need synchronised
    clocks (NTP); skew of d seconds can admit requests up to d seconds early.
    Within one process, waiters queue on a local lock so only the head polls Redis.
    """

    def __init__(
        self,
        redis_client: Any,
        key: str,
        rpm: int | None,
        tpm: int | None,
        *,
        window: float = 60.0,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        _check_limits(rpm, tpm, window)
        if not key:
            raise ValueError("key must be a non-empty prefix")
        self.rpm, self.tpm, self.window = rpm, tpm, window
        self.key = key
        self._keys = [f"{key}:log", f"{key}:tokens"]
        self._ttl_ms = max(1000, int(2 * window * 1000))
        self._clock, self._sleep = clock, sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._script = redis_client.register_script(_ACQUIRE_LUA)
        self._is_async = inspect.iscoroutinefunction(type(self._script).__call__)
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> None:
        """Wait for room for one request of `tokens` tokens (>= 0), then record it."""
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        if self.rpm is None and self.tpm is None:
            return
        async with self._lock:
            member = f"{uuid.uuid4().hex}:{int(tokens)}"
            while True:
                wait = await self._try(self._clock(), member, int(tokens))
                if wait <= 0:
                    return
                # A little jitter so workers that were told the same instant don't all poll
                # Redis at once; correctness does not depend on it.
                jitter = self._rng.uniform(0, min(0.05, 0.01 * self.window))
                await self._sleep(max(wait, MIN_SLEEP) + jitter)

    async def _try(self, now: float, member: str, tokens: int) -> float:
        args = [repr(now), repr(self.window), self.rpm or 0, self.tpm or 0, tokens, member]
        args.append(self._ttl_ms)
        if self._is_async:
            result = await self._script(keys=self._keys, args=args)
        else:
            result = await asyncio.to_thread(self._script, keys=self._keys, args=args)
        return float(result)
