"""Django loads an app's models from here: each noun package keeps its own ``models.py``,
imported below so that every model is registered (the tables are unchanged by where a
class lives). Import models from their noun package, not from this module."""

from annotation.projects.models import AuditEvent, Membership, Project  # noqa: F401
from annotation.prompts.models import ImportJob, PreferenceLabel, Prompt, Response  # noqa: F401
from annotation.reviews.models import (  # noqa: F401
    PairwiseReview,
    ReviewItem,
    ReviewQueue,
    ReviewSlot,
)
from annotation.rubrics.models import (  # noqa: F401
    Criterion,
    CriterionComment,
    Rubric,
    RubricDraft,
    RubricReviewDecision,
    RubricVersion,
)
