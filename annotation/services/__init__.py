"""Writes. Keyword-only functions, each one transaction."""

from .comments import comment_add, comment_resolve
from .drafts import (
    OPS,
    SaveOutcome,
    draft_discard,
    draft_edit,
    draft_edit_new_rubric,
    draft_resolve,
    draft_save,
    rubric_start,
)
from .import_jobs import (
    UploadTooLarge,
    import_job_get,
    import_job_run,
    import_jobs_of,
    import_start,
)
from .imports import ImportReport, data_import, import_limits
from .people import (
    api_token_get_or_create,
    api_token_rotate,
    membership_add,
    membership_remove,
    membership_set_role,
    project_create,
)
from .reviews import (
    ItemInput,
    item_adjudicate,
    queue_from_labels,
    review_commit,
    review_flag,
    review_queue_create,
    review_undo,
    slot_next,
)
from .rubrics import (
    CriterionInput,
    rubric_create,
    rubric_version_create,
    rubric_version_restore,
)
from .workflow import rubric_archive, rubric_review, rubric_submit_for_review

__all__ = [
    "OPS",
    "ItemInput",
    "item_adjudicate",
    "queue_from_labels",
    "review_commit",
    "review_flag",
    "review_queue_create",
    "review_undo",
    "slot_next",
    "CriterionInput",
    "SaveOutcome",
    "comment_add",
    "comment_resolve",
    "draft_discard",
    "draft_edit",
    "draft_edit_new_rubric",
    "draft_resolve",
    "draft_save",
    "rubric_start",
    "ImportReport",
    "UploadTooLarge",
    "api_token_get_or_create",
    "api_token_rotate",
    "data_import",
    "import_job_get",
    "import_job_run",
    "import_jobs_of",
    "import_limits",
    "import_start",
    "membership_add",
    "membership_remove",
    "membership_set_role",
    "project_create",
    "rubric_archive",
    "rubric_create",
    "rubric_review",
    "rubric_submit_for_review",
    "rubric_version_create",
    "rubric_version_restore",
]
