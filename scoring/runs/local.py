"""Judging a chunk of a run with a local model (the ``gpu`` queue's workers).

Per criterion: the units of one response share the prefix [instructions + conversation +
response]; its KV cache is computed once and every criterion is read against it (P(yes)).
Pairwise: a unit is one presentation order; the prefix is [instructions + conversation +
A + B] and the suffixes are the whole rubric (the overall verdict) and each criterion.

A unit whose prompt does not fit the model becomes a failed judgment with the reason; a
model that cannot be loaded fails the run with the reason (an ApplicationError).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from annotation.errors import ApplicationError
from scoring.engine import judging
from scoring.judges.models import JudgeEndpoint
from scoring.runs.models import Run

logger = logging.getLogger(__name__)

# Responses (per criterion) or orders (pairwise) scored between two writes: bounds the
# work lost to a crash and renews the chunk's lease as the rows are written.
SLICE = 64


def spec_for(endpoint: JudgeEndpoint) -> Any:
    from scoring.judges.local.model import LocalSpec

    return LocalSpec(
        path=endpoint.model_path,
        dtype=endpoint.dtype,
        device=endpoint.device,
        batch_tokens=endpoint.batch_tokens,
    )


def load(endpoint: JudgeEndpoint) -> Any:
    """This worker's judge for the endpoint (loaded once per process)."""
    from scoring.judges.services import model_path_allowed

    if not model_path_allowed(endpoint.model_path):  # LOCAL_MODEL_DIRS may have changed
        raise ApplicationError(
            f"“{endpoint.model_path}” is not under LOCAL_MODEL_DIRS on this worker."
        )
    try:
        from scoring.judges.local.model import judge_for

        return judge_for(spec_for(endpoint))
    except ImportError as exc:
        raise ApplicationError(
            f"Local judges need PyTorch and transformers on the gpu workers "
            f"(pip install -r requirements-ml.txt): {exc}"
        ) from None
    except (ValueError, OSError) as exc:
        raise ApplicationError(
            f"The local model of “{endpoint.name}” did not load: {exc}"
        ) from None


def _read_with(judge: Any) -> dict[str, str]:
    """The dtype and device a reading was made with, kept with the judgment."""
    return {"dtype": judge.dtype, "device": str(judge.device)}


def verdict(p: float) -> str:
    """The single-order verdict of P(A): the more likely letter ("tie" only at exactly ½)."""
    return "A" if p > 0.5 else "B" if p < 0.5 else "tie"


def judge_units(
    judge: Any,
    run: Run,
    units: list[dict[str, Any]],
    contexts: dict[int, Any],
    make_row: Callable[..., dict[str, Any]],
    threshold: float,
    write: Callable[[list[dict[str, Any]]], None],
) -> None:
    """Judge ``units`` in slices, handing each slice's rows to ``write``."""
    if run.mode == Run.Mode.PAIRWISE:
        for start in range(0, len(units), SLICE):
            write(_pairwise(judge, units[start : start + SLICE], contexts, make_row))
        return
    groups: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for unit in units:
        groups[(unit["r"], unit["s"])].append(unit)
    keys = list(groups)
    for start in range(0, len(keys), SLICE):
        part = {k: groups[k] for k in keys[start : start + SLICE]}
        write(_per_criterion(judge, part, contexts, make_row, threshold))


def _criterion(c: dict[str, Any], i: int = 1) -> judging.JudgeCriterion:
    return judging.JudgeCriterion(i, c["text"], c["points"], c.get("category", ""))


def _failed(
    units: list[dict[str, Any]], make_row: Callable[..., dict[str, Any]], error: str
) -> list[dict[str, Any]]:
    rows = []
    for unit in units:
        criterion = unit["crit"][0]["key"] if len(unit["crit"]) == 1 and "o" not in unit else None
        detail = {"order": unit["order"], "pair": unit["pair"]} if "o" in unit else {}
        rows.append(
            make_row(unit, unit["k"], criterion_key=criterion, error=error[:2000], detail=detail)
        )
    return rows


def _per_criterion(
    judge: Any,
    groups: dict[tuple[int, int], list[dict[str, Any]]],
    contexts: dict[int, Any],
    make_row: Callable[..., dict[str, Any]],
    threshold: float,
) -> list[dict[str, Any]]:
    from scoring.judges.local.prompting import criterion_pieces

    rows: list[dict[str, Any]] = []
    batch, members = [], []
    for (response_id, _), units in groups.items():
        ctx = contexts[response_id]
        try:
            pieces = criterion_pieces(
                judge.tokenizer,
                ctx.conversation,
                ctx.text,
                [_criterion(u["crit"][0]) for u in units],
            )
            judge.check_fits(len(pieces.prefix) + len(s) for s in pieces.suffixes)
        except ValueError as exc:
            rows += _failed(units, make_row, f"prompt: {exc}")
            continue
        batch.append((pieces.prefix, pieces.suffixes))
        members.append((units, pieces))
    if not batch:
        return rows
    started = time.perf_counter()
    readings = judge.score_shared(batch)
    latency = (time.perf_counter() - started) / max(1, sum(len(u) for u, _ in members))
    for (units, pieces), found in zip(members, readings, strict=True):
        for unit, suffix, reading in zip(units, pieces.suffixes, found, strict=True):
            rows.append(
                make_row(
                    unit,
                    unit["k"],
                    criterion_key=unit["crit"][0]["key"],
                    met=reading.probability >= threshold,
                    probability=reading.probability,
                    detail={"mass": round(reading.mass, 6), **_read_with(judge)},
                    prompt_tokens=len(pieces.prefix) + len(suffix),
                    latency=latency,
                )
            )
    return rows


def _pairwise(
    judge: Any,
    units: list[dict[str, Any]],
    contexts: dict[int, Any],
    make_row: Callable[..., dict[str, Any]],
) -> list[dict[str, Any]]:
    from scoring.judges.local.prompting import pairwise_pieces

    rows: list[dict[str, Any]] = []
    batch, members = [], []
    for unit in units:
        first, second = contexts[unit["r"]], contexts[unit["o"]]
        criteria = [_criterion(c, i) for i, c in enumerate(unit["crit"], start=1)]
        try:
            pieces = pairwise_pieces(
                judge.tokenizer, first.conversation, first.text, second.text, criteria
            )
            judge.check_fits(len(pieces.prefix) + len(s) for s in pieces.suffixes)
        except ValueError as exc:
            rows += _failed([unit], make_row, f"prompt: {exc}")
            continue
        batch.append((pieces.prefix, pieces.suffixes))
        members.append((unit, pieces))
    if not batch:
        return rows
    started = time.perf_counter()
    readings = judge.score_shared(batch, pairwise=True)
    latency = (time.perf_counter() - started) / len(members)
    for (unit, pieces), found in zip(members, readings, strict=True):
        overall, per_criterion = found[0], found[1:]
        detail = {
            "order": unit["order"],
            "pair": unit["pair"],
            "criteria": {i: verdict(r.probability) for i, r in enumerate(per_criterion, 1)},
            "criteria_p": {i: round(r.probability, 6) for i, r in enumerate(per_criterion, 1)},
            "mass": round(overall.mass, 6),
            **_read_with(judge),
        }
        rows.append(
            make_row(
                unit,
                unit["k"],
                winner=verdict(overall.probability),
                probability=overall.probability,
                detail=detail,
                prompt_tokens=len(pieces.prefix) + sum(len(s) for s in pieces.suffixes),
                latency=latency,
            )
        )
    return rows
