"""The machine side: judge endpoints, co-authoring jobs and proposals, scoring runs and
judgments. Imports ``annotation``; ``annotation`` never imports this app."""

from scoring.models.coauthoring import (
    ENV_NAME,
    CoauthorJob,
    CoauthorSettings,
    JudgeEndpoint,
    Proposal,
)
from scoring.models.embeddings import Embedding
from scoring.models.exports import Export
from scoring.models.providers import LLMProvider
from scoring.models.runs import Judgment, Run, RunChunk, RunJudgment

__all__ = [
    "ENV_NAME",
    "CoauthorJob",
    "CoauthorSettings",
    "Embedding",
    "Export",
    "Judgment",
    "JudgeEndpoint",
    "LLMProvider",
    "Proposal",
    "Run",
    "RunChunk",
    "RunJudgment",
]
