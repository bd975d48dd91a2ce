"""Writes of the scoring app: keyword-only functions, each one transaction."""

from . import runs
from .coauthor import (
    Preview,
    batch_preview,
    coauthor_settings,
    endpoint_for,
    job_cancel,
    job_start,
    proposal_changes,
    proposal_decide,
)
from .endpoints import coauthor_settings_save, endpoint_delete, endpoint_save, endpoint_test
from .reviews import queue_from_run

__all__ = [
    "runs",
    "Preview",
    "batch_preview",
    "coauthor_settings",
    "coauthor_settings_save",
    "endpoint_delete",
    "endpoint_for",
    "endpoint_save",
    "endpoint_test",
    "job_cancel",
    "job_start",
    "proposal_changes",
    "proposal_decide",
    "queue_from_run",
]
