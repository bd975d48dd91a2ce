"""Django loads an app's models from here: each noun package keeps its own ``models.py``,
imported below so that every model is registered (the tables are unchanged by where a
class lives). Import models from their noun package, not from this module."""

from scoring.coauthoring.models import CoauthorJob, CoauthorSettings, Proposal  # noqa: F401
from scoring.datasets.models import Export  # noqa: F401
from scoring.insights.models import RunInsights  # noqa: F401
from scoring.judges.models import (  # noqa: F401
    Embedding,
    EmbeddingModelStatus,
    JudgeEndpoint,
    LLMProvider,
)
from scoring.probes.models import Probe, ProbeVariant  # noqa: F401
from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment  # noqa: F401
from scoring.runs.summary import RunSummary  # noqa: F401
