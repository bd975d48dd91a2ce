"""Writes. Keyword-only functions, each one transaction."""

from annotation.services.comments import comment_add, comment_resolve
from annotation.services.drafts import (
    OPS,
    SaveOutcome,
    draft_discard,
    draft_edit,
    draft_edit_new_rubric,
    draft_resolve,
    draft_save,
    rubric_start,
)
from annotation.services.import_jobs import (
    UploadTooLarge,
    import_job_get,
    import_job_run,
    import_jobs_of,
    import_start,
)
from annotation.services.imports import ImportReport, data_import, import_limits
from annotation.services.people import (
    api_token_get_or_create,
    api_token_rotate,
    membership_add,
    membership_remove,
    membership_set_role,
    project_create,
)
from annotation.services.reviews import (
    ItemInput,
    item_adjudicate,
    queue_from_labels,
    review_commit,
    review_flag,
    review_queue_create,
    review_undo,
    slot_next,
)
from annotation.services.rubrics import (
    CriterionInput,
    rubric_create,
    rubric_version_create,
    rubric_version_restore,
)
from annotation.services.workflow import rubric_archive, rubric_review, rubric_submit_for_review

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
