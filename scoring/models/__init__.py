"""The machine side: judge endpoints, co-authoring jobs and proposals, scoring runs and
judgments. Imports ``annotation``; ``annotation`` never imports this app."""

from .coauthoring import ENV_NAME, CoauthorJob, CoauthorSettings, JudgeEndpoint, Proposal
from .embeddings import Embedding
from .exports import Export
from .providers import LLMProvider
from .runs import Judgment, Run, RunChunk, RunJudgment

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
