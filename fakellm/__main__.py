"""Command line: ``python -m fakellm`` serves a fake OpenAI API until Ctrl+C.

Why a CLI: offline development and benchmarks point the real app at it through
``OPENAI_BASE_URL`` without any test harness.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from fakellm.config import FakeConfig, is_loopback_host, load_rules
from fakellm.server import FakeLLMServer


def build_parser() -> argparse.ArgumentParser:
    """The CLI's options, mirroring :class:`FakeConfig`."""
    parser = argparse.ArgumentParser(
        prog="python -m fakellm",
        description="A fake OpenAI-compatible server with scripted answers and injected faults.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback only)")
    parser.add_argument("--port", type=int, default=8001, help="port; 0 picks a free one")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per chat request")
    parser.add_argument("--latency-jitter", type=float, default=0.0, help="extra 0..N seconds")
    parser.add_argument("--rate-429", type=float, default=0.0, help="share answered 429")
    parser.add_argument("--rate-500", type=float, default=0.0, help="share answered 500")
    parser.add_argument("--rate-timeout", type=float, default=0.0, help="share left hanging")
    parser.add_argument("--rate-malformed", type=float, default=0.0, help="share with bad JSON")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds")
    parser.add_argument("--hang-seconds", type=float, default=30.0, help="how long hangs last")
    parser.add_argument("--seed", type=int, default=0, help="seed for the fault draws")
    parser.add_argument(
        "--model", action="append", dest="models", metavar="NAME", help="model name (repeatable)"
    )
    parser.add_argument("--script", metavar="RULES.json", help="JSON list of reply rules")
    parser.add_argument(
        "--follow-injections",
        action="append",
        default=[],
        metavar="MODEL",
        help="a model that follows instructions to the grader hidden in a response "
        "(repeatable; '*' for every model); the others ignore them",
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="permit a non-loopback --host (never in tests)"
    )
    return parser


async def _serve(server: FakeLLMServer) -> None:
    url = await server.start()
    print(f"fakellm listening on {url}/v1", flush=True)
    task = asyncio.current_task()
    if task is not None:
        # SIGTERM (e.g. from a test's Popen.terminate) should end as cleanly as Ctrl+C.
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await server.serve()


def main(argv: list[str] | None = None) -> int:
    """Parse the options, serve until interrupted; returns the exit status."""
    args = build_parser().parse_args(argv)
    if not args.allow_remote and not is_loopback_host(args.host):
        print(
            f"fakellm: refusing to bind to non-loopback host {args.host!r} "
            "(pass --allow-remote if you really mean it)",
            file=sys.stderr,
        )
        return 2
    try:
        config = FakeConfig(
            models=args.models or ["fake-judge"],
            latency=args.latency,
            latency_jitter=args.latency_jitter,
            rate_429=args.rate_429,
            rate_500=args.rate_500,
            rate_timeout=args.rate_timeout,
            rate_malformed=args.rate_malformed,
            retry_after=args.retry_after,
            hang_seconds=args.hang_seconds,
            seed=args.seed,
            rules=load_rules(args.script) if args.script else [],
            follow_injections=args.follow_injections,
        )
    except (OSError, ValueError) as exc:
        print(f"fakellm: {exc}", file=sys.stderr)
        return 2
    server = FakeLLMServer(config, args.host, args.port, allow_remote=args.allow_remote)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(server))
    return 0


if __name__ == "__main__":
    sys.exit(main())
