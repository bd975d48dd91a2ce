"""fakellm: a fake OpenAI-compatible HTTP server for tests, benchmarks and offline work.

Why a package of its own: it is plain standard-library asyncio (no Django), so test fixtures,
benchmarks and ``python -m fakellm`` can all use it without the web app.
"""

from __future__ import annotations

from fakellm.server import (
    FakeConfig,
    FakeLLMServer,
    Rule,
    generate_from_schema,
    is_loopback_host,
    load_rules,
)

__all__ = [
    "FakeConfig",
    "FakeLLMServer",
    "Rule",
    "generate_from_schema",
    "is_loopback_host",
    "load_rules",
]
