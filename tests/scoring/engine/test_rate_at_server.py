"""The rate limit as the server sees it: requests arriving at the fake OpenAI-compatible
server never exceed the endpoint's RPM in any window. A shortened window (1 s standing for
60 s) keeps the test fast.

A request reaches the server some time after the limiter admits it: measured here, the very
first request arrives ~0.1 s after its admission (connection set-up, the server's first
request) while later ones take a few ms. A server counting from that late first arrival
would see the next window's requests early, so the limiter's window carries a margin for
that absolute delay: the studio counts 60 s + 1 s (scoring.judges.gateways.RATE_WINDOW_MARGIN), this
test 1 s + 0.5 s (the delay does not shrink with the window).

The delay grows with the burst: a window's worth of requests admitted at once leaves the
client one after another, a few ms of CPU each. On a loaded two-core machine 120 requests
took over 0.3 s to leave, so the test sends 60 per window, with a 0.5 s margin."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from scoring.engine.gateway import Gateway
from scoring.engine.gateway_types import EndpointConfig
from scoring.engine.netguard import NetworkPolicy
from scoring.engine.ratelimit import WindowLimiter

ROOT = Path(__file__).resolve().parents[3]
RPM = 60
WINDOW = 1.0
MARGIN = 0.5  # an absolute delay, so not scaled down with the window


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_rpm_is_never_exceeded_at_the_server():
    """The server runs in its own process, so its arrival times are not skewed by the
    client holding the interpreter lock."""
    server = subprocess.Popen(
        [sys.executable, "-m", "fakellm", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline() if server.stdout else ""
        url = line.strip().rsplit(" ", 1)[-1].removesuffix("/v1")
        assert url.startswith("http://127.0.0.1:"), line
        config = EndpointConfig(
            name="limited",
            base_url=url + "/v1",
            model="fake-judge",
            max_concurrency=64,
            network=NetworkPolicy.parse([url.removeprefix("http://")]),  # its loopback port
        )
        limiter = WindowLimiter(RPM, None, window=WINDOW + MARGIN)

        async def run() -> None:
            async with Gateway(config, limiter=limiter) as gateway:
                await asyncio.gather(
                    *(gateway.chat([{"role": "user", "content": f"q{i}"}]) for i in range(3 * RPM))
                )

        started = time.monotonic()
        asyncio.run(run())
        elapsed = time.monotonic() - started
        with urllib.request.urlopen(url + "/_stats", timeout=10) as response:
            arrivals = json.loads(response.read())["arrivals"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert len(arrivals) == 3 * RPM
    arrivals.sort()
    first_burst = arrivals[RPM - 1] - arrivals[0]
    assert most_in_any_window(arrivals, WINDOW) <= RPM, f"first window's spread {first_burst:.3f} s"
    # …and the limit is used, not merely respected: three windows' worth takes about two.
    assert 2 * WINDOW <= elapsed < 2 * (WINDOW + MARGIN) + 1.0
