"""Why a call to a judge failed, in plain words, and what fixes it: a run's failed
judgments grouped by reason, and a failed co-authoring job's reason. The error's kind is
the text before the first colon ("malformed: …", "timeout: …"), as the gateway writes it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# What happened, and the action that fixes it, by error kind.
ADVICE: dict[str, tuple[str, str]] = {
    "malformed": (
        "the judge's answer was not valid JSON for the schema, or did not fit the rubric",
        "Retry failed; if it persists, choose a stronger model or another grading mode.",
    ),
    "timeout": (
        "the endpoint did not answer in time",
        "Raise the endpoint's timeout or lower its concurrency on the Judges page, then "
        "Retry failed.",
    ),
    "rate_limited": (
        "the endpoint refused the calls for its rate limits",
        "Set the endpoint's requests/min and tokens/min (or lower its concurrency) on the "
        "Judges page, then Retry failed.",
    ),
    "server_error": (
        "the endpoint's server failed",
        "Retry failed once the server is back.",
    ),
    "connection": (
        "the endpoint could not be reached",
        "Check its base URL on the Judges page (Test the connection), then Retry failed.",
    ),
    "client_error": (
        "the endpoint refused the request (an unknown model, a missing or wrong key)",
        "Check the model name and provider on the Judges page, then Retry failed.",
    ),
    "config": (
        "the endpoint's settings are incomplete",
        "Complete the endpoint on the Judges page, then Retry failed.",
    ),
    "blocked": (
        "the site's network policy does not allow the endpoint's address",
        "Ask the site admin to allow it, or choose another endpoint.",
    ),
    "prompt": (
        "the conversation, response and rubric did not fit the local model's context",
        "Use a model with a longer context, or shorten the rubric.",
    ),
}
OTHER = ("the judgment failed", "Retry failed.")


@dataclass(frozen=True)
class FailureGroup:
    kind: str
    count: int
    what: str
    action: str
    example: str  # one error of the group, as recorded


def failure_kind(error: str) -> str:
    head, sep, _ = error.partition(":")
    return head.strip() if sep and head.strip() in ADVICE else "other"


def explain(error: str) -> tuple[str, str]:
    """What happened and what fixes it, for one recorded error."""
    return ADVICE.get(failure_kind(error), OTHER)


def failure_groups(errors: Iterable[str]) -> list[FailureGroup]:
    """The failed judgments' errors by kind, largest group first."""
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for error in errors:
        kind = failure_kind(error)
        counts[kind] += 1
        examples.setdefault(kind, error)
    return [
        FailureGroup(kind, n, *ADVICE.get(kind, OTHER), examples[kind])
        for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
