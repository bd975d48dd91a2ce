"""Rate limiters: exact sliding-window limits under concurrency, without needless slowness.

In-process tests run on a fake clock whose `sleep` advances time instead of waiting, so a
simulated hour takes milliseconds. The Redis tests run in real time with a 1-second window,
two limiter instances standing in for two Celery workers.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import random
import time
import uuid

import pytest

from scoring.engine.ratelimit import RedisWindowLimiter, WindowLimiter

REDIS_URL = os.environ.get("RUBRICSTUDIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def max_in_any_window(times: list[float], window: float, weights: list[int] | None = None) -> int:
    """The largest count (or weight sum) of events in any [t, t + window) with t an event time.

    Checking windows that start at event times suffices: any window can slide right to its
    first event without losing events.
    """
    order = sorted(range(len(times)), key=times.__getitem__)
    ts = [times[i] for i in order]
    ws = [1 if weights is None else weights[i] for i in order]
    prefix = [0]
    for w in ws:
        prefix.append(prefix[-1] + w)
    best = 0
    for i, t in enumerate(ts):
        end = bisect.bisect_left(ts, t + window)
        best = max(best, prefix[end] - prefix[i])
    return best


async def run_concurrently(limiter, sizes: list[int], clock) -> list[float]:
    """Start one coroutine per request at once; return each one's admission time."""
    times = [0.0] * len(sizes)

    async def one(i: int) -> None:
        await limiter.acquire(sizes[i])
        times[i] = clock()  # no await in between: this is the admission instant

    await asyncio.gather(*(one(i) for i in range(len(sizes))))
    return times


# --- in-process ------------------------------------------------------------------------------


def test_rpm_is_exact_for_500_concurrent_requests():
    ft = FakeTime()
    limiter = WindowLimiter(120, None, clock=ft.clock, sleep=ft.sleep)
    start = ft.now
    times = asyncio.run(run_concurrently(limiter, [1] * 500, ft.clock))
    assert max_in_any_window(times, 60.0) == 120
    # 500 = 4 * 120 + 20: batches admitted at 0, 60, 120, 180 and 240 s, not later.
    assert max(times) - start == pytest.approx(240.0, abs=0.01)


def test_rpm_throughput_240_requests_take_one_window():
    ft = FakeTime()
    limiter = WindowLimiter(120, None, clock=ft.clock, sleep=ft.sleep)
    times = asyncio.run(run_concurrently(limiter, [1] * 240, ft.clock))
    assert max_in_any_window(times, 60.0) <= 120
    assert max(times) - min(times) == pytest.approx(60.0, abs=0.01)


def test_rpm_with_staggered_arrivals():
    """Requests arriving over time (not all at once) are also never over the limit."""
    ft = FakeTime()
    limiter = WindowLimiter(10, None, window=6.0, clock=ft.clock, sleep=ft.sleep)
    rng = random.Random(3)
    times: list[float] = []

    async def main() -> None:
        async def one(delay: float) -> None:
            await asyncio.sleep(0)
            await limiter.acquire(1)
            times.append(ft.clock())

        tasks = []
        for _ in range(200):
            tasks.append(asyncio.create_task(one(0)))
            await ft.sleep(rng.uniform(0, 0.8))  # the clock moves between arrivals too
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert len(times) == 200
    assert max_in_any_window(times, 6.0) <= 10


def test_tpm_is_exact_and_reasonably_fast():
    ft = FakeTime()
    rng = random.Random(7)
    sizes = [rng.randint(1, 200) for _ in range(300)]
    limiter = WindowLimiter(None, 1000, clock=ft.clock, sleep=ft.sleep)
    times = asyncio.run(run_concurrently(limiter, sizes, ft.clock))
    assert max_in_any_window(times, 60.0, sizes) <= 1000
    # Each window is filled to at least tpm - 200 before anyone waits, so the run takes at
    # most ceil(total / 800) windows; the limit itself forces at least total / 1000 - 1.
    total = sum(sizes)
    duration = max(times) - min(times)
    assert (total / 1000 - 1) * 60 <= duration <= -(-total // 800) * 60


def test_rpm_and_tpm_together():
    ft = FakeTime()
    rng = random.Random(11)
    sizes = [rng.randint(1, 50) for _ in range(400)]
    limiter = WindowLimiter(30, 600, window=10.0, clock=ft.clock, sleep=ft.sleep)
    times = asyncio.run(run_concurrently(limiter, sizes, ft.clock))
    assert max_in_any_window(times, 10.0) <= 30
    assert max_in_any_window(times, 10.0, sizes) <= 600


def test_oversized_request_goes_alone_instead_of_deadlocking():
    ft = FakeTime()
    limiter = WindowLimiter(None, 100, clock=ft.clock, sleep=ft.sleep)

    async def main() -> list[float]:
        times = []
        for tokens in (10, 500, 10):
            await limiter.acquire(tokens)
            times.append(ft.now)
        return times

    t0 = ft.now
    small, big, after = (t - t0 for t in asyncio.run(main()))
    assert small == 0
    assert big == pytest.approx(60.0, abs=0.01)  # waits until the window is empty
    assert after == pytest.approx(120.0, abs=0.01)  # and then occupies it alone


def test_unlimited_never_waits():
    ft = FakeTime()
    limiter = WindowLimiter(None, None, clock=ft.clock, sleep=ft.sleep)
    asyncio.run(run_concurrently(limiter, [10**6] * 100, ft.clock))
    assert ft.sleeps == []


def test_invalid_limits_are_rejected():
    with pytest.raises(ValueError, match="rpm"):
        WindowLimiter(0, None)
    with pytest.raises(ValueError, match="tpm"):
        WindowLimiter(None, -5)
    with pytest.raises(ValueError, match="window"):
        WindowLimiter(1, None, window=0)
    with pytest.raises(ValueError, match="tokens"):
        asyncio.run(WindowLimiter(1, None).acquire(-1))


def test_real_clock_smoke():
    """The defaults (monotonic clock, asyncio.sleep) work: 6 requests at 5 per 0.2 s."""
    limiter = WindowLimiter(5, None, window=0.2)
    times = asyncio.run(run_concurrently(limiter, [1] * 6, time.monotonic))
    assert max_in_any_window(times, 0.2) <= 5
    assert 0.19 <= max(times) - min(times) < 0.5


# --- Redis -----------------------------------------------------------------------------------


@pytest.fixture
def redis_prefix():
    """A unique key prefix on database 14; only its keys are deleted afterwards."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    prefix = f"rubricstudio-test:rl:{uuid.uuid4().hex}"
    yield prefix
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


class AdmissionClock:
    """time.time, remembering per task the last value read.

    The limiter reads the clock once per attempt, in the acquiring task, and passes that value
    to the script; so right after `acquire` returns, the task's last reading is the time the
    script admitted it at (exact, unlike a reading taken after the Redis round-trip).
    """

    def __init__(self) -> None:
        self.last: dict[object, float] = {}

    def __call__(self) -> float:
        now = time.time()
        self.last[asyncio.current_task()] = now
        return now

    def admitted(self) -> float:
        return self.last[asyncio.current_task()]


def test_redis_two_workers_share_the_limit(redis_prefix):
    """An async and a sync client (both code paths) as two workers: 40 requests at 20/s."""
    import redis
    import redis.asyncio

    async def main() -> tuple[list[float], float]:
        async_client = redis.asyncio.Redis.from_url(REDIS_URL)
        sync_client = redis.Redis.from_url(REDIS_URL)
        clock = AdmissionClock()
        workers = [
            RedisWindowLimiter(async_client, redis_prefix, 20, None, window=1.0, clock=clock),
            RedisWindowLimiter(sync_client, redis_prefix, 20, None, window=1.0, clock=clock),
        ]
        times: list[float] = []

        async def one(i: int) -> None:
            await workers[i % 2].acquire(1)
            times.append(clock.admitted())

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(40)))
        elapsed = time.monotonic() - started
        await async_client.aclose()
        sync_client.close()
        return times, elapsed

    times, elapsed = asyncio.run(main())
    assert len(times) == 40
    assert max_in_any_window(times, 1.0) <= 20
    assert 1.0 <= elapsed < 2.0  # two windows' worth: the second 20 go once the first leave


def test_redis_tpm_and_oversized(redis_prefix):
    import redis.asyncio

    async def main() -> tuple[list[float], list[int]]:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        clock = AdmissionClock()
        limiters = [
            RedisWindowLimiter(client, redis_prefix, None, 100, window=0.5, clock=clock)
            for _ in range(2)
        ]
        sizes = [random.Random(i).randint(5, 30) for i in range(16)]
        times = [0.0] * len(sizes)

        async def one(i: int) -> None:
            await limiters[i % 2].acquire(sizes[i])
            times[i] = clock.admitted()

        await asyncio.gather(*(one(i) for i in range(len(sizes))))

        # An oversized request is admitted alone once the window is empty, not never.
        other = f"{redis_prefix}:oversized"
        big = RedisWindowLimiter(client, other, None, 100, window=0.5, clock=clock)
        started = time.monotonic()
        await asyncio.wait_for(big.acquire(500), timeout=2)
        await asyncio.wait_for(big.acquire(500), timeout=2)
        assert 0.45 <= time.monotonic() - started < 1.5
        ttl = await client.pttl(f"{other}:log")
        assert 0 < ttl <= 1000  # keys expire two windows after the last admission
        await client.aclose()
        return times, sizes

    times, sizes = asyncio.run(main())
    assert max_in_any_window(times, 0.5, sizes) <= 100
