"""fakellm: a fake OpenAI-compatible HTTP server for tests, benchmarks and offline work.

Why a package of its own: it is plain standard-library asyncio (no Django), so test fixtures,
benchmarks and ``python -m fakellm`` can all use it without the web app.
"""

from __future__ import annotations

from fakellm.config import FakeConfig, Rule, is_loopback_host, load_rules
from fakellm.logprobs import LogprobRule
from fakellm.schema import generate_from_schema
from fakellm.server import FakeLLMServer

__all__ = [
    "FakeConfig",
    "FakeLLMServer",
    "LogprobRule",
    "Rule",
    "generate_from_schema",
    "is_loopback_host",
    "load_rules",
]
