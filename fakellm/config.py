"""How the fake server answers: scripted reply rules and its runtime configuration.

A rule names a piece of prompt text and the reply to give when a request contains it (a
logprob rule, the first token's ``top_logprobs`` for a one-token logprobs request); the
configuration sets the served model names, latency, the rates of simulated faults (429, 500,
hangs, malformed JSON) and the seed their draws start from. Also here: the check that keeps
the server bound to this machine.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakellm.logprobs import LogprobRule

__all__ = ["FakeConfig", "Rule", "is_loopback_host", "load_rules"]


@dataclass
class Rule:
    """A scripted answer: the first rule whose pattern occurs in the prompt decides the reply.

    Why a pattern over the whole conversation text: tests script a reply for "the prompt that
    mentions X" without reproducing the exact prompt the code under test builds.
    """

    pattern: str
    reply: str | dict[str, Any] | list[Any]
    regex: bool = False

    def __post_init__(self) -> None:
        # Compile once and serialize once: rules are checked on every request.
        self._compiled: re.Pattern[str] | None = re.compile(self.pattern) if self.regex else None
        self._text: str = self.reply if isinstance(self.reply, str) else json.dumps(self.reply)

    def matches(self, text: str) -> bool:
        """Whether this rule applies to the concatenated message text."""
        if self._compiled is not None:
            return self._compiled.search(text) is not None
        return self.pattern in text

    @property
    def reply_text(self) -> str:
        """The reply as the assistant message content (dicts/lists as JSON)."""
        return self._text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rule:
        """Build a rule from its JSON form ``{"pattern", "reply", "regex"}``."""
        if not isinstance(data, dict) or "pattern" not in data or "reply" not in data:
            raise ValueError(f"a rule needs 'pattern' and 'reply': {data!r}")
        unknown = set(data) - {"pattern", "reply", "regex"}
        if unknown:
            raise ValueError(f"unknown rule fields {sorted(unknown)}")
        return cls(str(data["pattern"]), data["reply"], bool(data.get("regex", False)))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as accepted by :meth:`from_dict`."""
        return {"pattern": self.pattern, "reply": self.reply, "regex": self.regex}


def load_rules(path: str | Path) -> list[Rule]:
    """Read rules from a JSON file: a list of ``{"pattern", "reply", "regex"}`` objects
    (or an object with such a list under ``"rules"``)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = data.get("rules")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of rules")
    return [Rule.from_dict(item) for item in data]


def _as_rule(item: Rule | dict[str, Any]) -> Rule:
    return item if isinstance(item, Rule) else Rule.from_dict(item)


def _as_logprob_rule(item: LogprobRule | dict[str, Any]) -> LogprobRule:
    return item if isinstance(item, LogprobRule) else LogprobRule.from_dict(item)


@dataclass
class FakeConfig:
    """How the fake server behaves; every field can be changed at runtime.

    Fault rates are probabilities per chat request, drawn from ``random.Random(seed)`` so a
    run is reproducible; they must sum to at most 1.
    """

    models: list[str] = field(default_factory=lambda: ["fake-judge"])
    latency: float = 0.0
    latency_jitter: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    rate_malformed: float = 0.0
    retry_after: float = 1.0
    hang_seconds: float = 30.0
    seed: int = 0
    rules: list[Rule] = field(default_factory=list)
    # Scripted first tokens of one-token logprobs requests (``logprobs: true``,
    # ``max_tokens: 1``); without a match, the offline judge's probabilities.
    logprob_rules: list[LogprobRule] = field(default_factory=list)
    # Models that follow instructions to the grader hidden in a response ("*": every model);
    # the others recognise such instructions and grade as if they were not there.
    follow_injections: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.models, str):
            raise ValueError("models must be a list of model names")
        self.rules = [_as_rule(r) for r in self.rules]
        self.logprob_rules = [_as_logprob_rule(r) for r in self.logprob_rules]
        self.models = [str(m) for m in self.models]
        if isinstance(self.follow_injections, str):
            raise ValueError("follow_injections must be a list of model names")
        self.follow_injections = [str(m) for m in self.follow_injections]
        self.validate()

    def validate(self) -> None:
        """Reject settings that would make the server misbehave in confusing ways."""
        if not self.models:
            raise ValueError("models must name at least one model")
        rates = (self.rate_429, self.rate_500, self.rate_timeout, self.rate_malformed)
        if any(not 0.0 <= r <= 1.0 for r in rates):
            raise ValueError("fault rates must lie in [0, 1]")
        if sum(rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must sum to at most 1")
        for name in ("latency", "latency_jitter", "retry_after", "hang_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def with_changes(self, **changes: Any) -> FakeConfig:
        """A validated copy with some fields replaced (rules and logprob rules may be given
        as dicts)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        current = {name: getattr(self, name) for name in names}
        current.update(changes)
        for name in ("latency", "latency_jitter", "retry_after", "hang_seconds"):
            current[name] = float(current[name])
        for name in ("rate_429", "rate_500", "rate_timeout", "rate_malformed"):
            current[name] = float(current[name])
        current["seed"] = int(current["seed"])
        current["models"] = list(current["models"])
        current["rules"] = list(current["rules"])
        current["logprob_rules"] = list(current["logprob_rules"])
        current["follow_injections"] = list(current["follow_injections"])
        return FakeConfig(**current)

    def follows_injections(self, model: str) -> bool:
        return "*" in self.follow_injections or model in self.follow_injections

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the same shape ``POST /_config`` accepts."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["rules"] = [r.to_dict() for r in self.rules]
        data["logprob_rules"] = [r.to_dict() for r in self.logprob_rules]
        data["models"] = list(self.models)
        data["follow_injections"] = list(self.follow_injections)
        return data


def is_loopback_host(host: str) -> bool:
    """Whether binding to ``host`` keeps the server on this machine.

    Why: a fake that answers anything must never be reachable from the network by accident.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
