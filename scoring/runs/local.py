"""Judging a chunk of a run with a local model (the ``gpu`` queue's workers): this worker's
judge for the endpoint, loaded once per process; the judging itself is the run's mode's
(``JudgingMode.judge_local`` in ``scoring.runs.modes``: per criterion, P(yes) read against
each response's shared prefix; pairwise, P(A) for each presentation order).

A unit whose prompt does not fit the model becomes a failed judgment with the reason; a
model that cannot be loaded fails the run with the reason (an ApplicationError).
"""

from __future__ import annotations

import logging
from typing import Any

from annotation.errors import ApplicationError
from scoring.judges.models import JudgeEndpoint
from scoring.judges.services import model_path_allowed
from scoring.runs.models import Run
from scoring.runs.modes.base import Context, Unit, Write
from scoring.runs.modes.pairwise import verdict
from scoring.runs.modes.registry import mode_for

__all__ = ["judge_units", "load", "spec_for", "verdict"]  # verdict: for the tests

logger = logging.getLogger(__name__)


def spec_for(endpoint: JudgeEndpoint) -> Any:
    # scoring.judges.local is imported lazily here and below: it loads torch.
    from scoring.judges.local.model import LocalSpec

    return LocalSpec(
        path=endpoint.model_path,
        dtype=endpoint.dtype,
        device=endpoint.device,
        batch_tokens=endpoint.batch_tokens,
    )


def load(endpoint: JudgeEndpoint) -> Any:
    """This worker's judge for the endpoint (loaded once per process)."""

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


def judge_units(
    judge: Any,
    run: Run,
    units: list[Unit],
    contexts: dict[int, Context],
    threshold: float,
    write: Write,
) -> None:
    """Judge ``units`` with the run's mode in slices, handing each slice's rows to
    ``write``."""
    mode_for(run.mode).judge_local(judge, run, units, contexts, threshold, write)
