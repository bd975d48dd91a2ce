"""Every judging mode by its ``Run.Mode`` value: add a mode's class here."""

from __future__ import annotations

from annotation.errors import ApplicationError
from scoring.runs.modes.base import JudgingMode
from scoring.runs.modes.grouped import GroupedMode
from scoring.runs.modes.holistic import HolisticMode
from scoring.runs.modes.pairwise import PairwiseMode
from scoring.runs.modes.per_criterion import PerCriterionMode

MODES: dict[str, JudgingMode] = {
    cls.value: cls() for cls in (PerCriterionMode, GroupedMode, HolisticMode, PairwiseMode)
}


def mode_for(mode: str) -> JudgingMode:
    """The judging mode of a ``Run.Mode`` value; ApplicationError for an unknown one."""
    try:
        return MODES[mode]
    except KeyError:
        raise ApplicationError(f"Unknown mode “{mode}”.") from None
