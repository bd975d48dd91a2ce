"""The human side and the content: projects, people, prompts, responses, rubrics, and the
expert review of pairwise judgments.

Writes go through ``annotation.services``; reads a view touches go through
``annotation.selectors`` so that every queryset is scoped by membership.
"""

from annotation.models.core import (
    ROLE_RANK,
    AuditEvent,
    Criterion,
    CriterionComment,
    Membership,
    PreferenceLabel,
    Project,
    Prompt,
    Response,
    Role,
    Rubric,
    RubricDraft,
    RubricReviewDecision,
    RubricVersion,
    content_hash,
)
from annotation.models.imports import ImportJob
from annotation.models.reviews import PairwiseReview, ReviewItem, ReviewQueue, ReviewSlot

__all__ = [
    "ROLE_RANK",
    "AuditEvent",
    "Criterion",
    "CriterionComment",
    "ImportJob",
    "Membership",
    "PairwiseReview",
    "PreferenceLabel",
    "Project",
    "Prompt",
    "Response",
    "ReviewItem",
    "ReviewQueue",
    "ReviewSlot",
    "Role",
    "Rubric",
    "RubricDraft",
    "RubricReviewDecision",
    "RubricVersion",
    "content_hash",
]
