"""Writes of the scoring app: keyword-only functions, each one transaction."""

from scoring.services import runs
from scoring.services.coauthor import (
    Preview,
    batch_preview,
    coauthor_settings,
    endpoint_for,
    job_cancel,
    job_start,
    proposal_changes,
    proposal_decide,
)
from scoring.services.endpoints import (
    coauthor_settings_save,
    endpoint_delete,
    endpoint_save,
    endpoint_test,
)
from scoring.services.reviews import queue_from_run

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
