from django.urls import path

from annotation.projects import views as project_views
from annotation.prompts import import_views as prompt_import_views
from annotation.prompts import views as prompt_views
from annotation.reviews import adjudication_views as review_adjudication_views
from annotation.reviews import views as review_views
from annotation.rubrics import history_views as rubric_history_views
from annotation.rubrics import views as rubric_views

app_name = "annotation"

urlpatterns = [
    path("", project_views.project_list, name="project_list"),
    path("account/", project_views.account_settings, name="account"),
    path("p/<slug:slug>/", project_views.project_detail, name="project_detail"),
    path(
        "p/<slug:slug>/prompts/<int:prompt_id>/", prompt_views.prompt_detail, name="prompt_detail"
    ),
    path(
        "p/<slug:slug>/prompts/<int:prompt_id>/rubric/",
        rubric_views.prompt_rubric_start,
        name="prompt_rubric_start",
    ),
    path("p/<slug:slug>/import/", prompt_import_views.import_page, name="import"),
    path("p/<slug:slug>/import/<int:job_id>/", prompt_import_views.import_job, name="import_job"),
    path(
        "p/<slug:slug>/import/template/<slug:key>/",
        prompt_import_views.import_template,
        name="import_template",
    ),
    path(
        "p/<slug:slug>/rubrics/new/",
        rubric_views.project_rubric_create,
        name="project_rubric_create",
    ),
    path("p/<slug:slug>/rubrics/<int:rubric_id>/", rubric_views.rubric_page, name="rubric_page"),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/editor/",
        rubric_views.rubric_editor,
        name="rubric_editor",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/draft/<slug:op>/",
        rubric_views.rubric_draft,
        name="rubric_draft",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/save/", rubric_views.rubric_save, name="rubric_save"
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/resolve/",
        rubric_views.rubric_resolve,
        name="rubric_resolve",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/workflow/",
        rubric_views.rubric_workflow,
        name="rubric_workflow",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/comments/",
        rubric_views.rubric_comment,
        name="rubric_comment",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/comments/<int:comment_id>/resolve/",
        rubric_views.rubric_comment_resolve,
        name="rubric_comment_resolve",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/export/",
        rubric_views.rubric_export,
        name="rubric_export",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/history/",
        rubric_history_views.rubric_history,
        name="rubric_history",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/diff/",
        rubric_history_views.rubric_diff,
        name="rubric_diff",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/restore/<int:number>/",
        rubric_history_views.rubric_restore,
        name="rubric_restore",
    ),
    path("p/<slug:slug>/reviews/", review_views.review_queues, name="review_queues"),
    path(
        "p/<slug:slug>/reviews/mine/",
        review_adjudication_views.review_mine,
        name="review_mine",
    ),
    path(
        "p/<slug:slug>/reviews/<int:queue_id>/review/", review_views.review_next, name="review_next"
    ),
    path(
        "p/<slug:slug>/reviews/<int:queue_id>/items/<int:slot_id>/",
        review_views.review_item,
        name="review_item",
    ),
    path(
        "p/<slug:slug>/reviews/<int:queue_id>/items/<int:slot_id>/commit/",
        review_views.review_commit,
        name="review_commit",
    ),
    path(
        "p/<slug:slug>/reviews/<int:queue_id>/items/<int:slot_id>/flag/",
        review_views.review_flag,
        name="review_flag",
    ),
    path(
        "p/<slug:slug>/reviews/<int:queue_id>/undo/", review_views.review_undo, name="review_undo"
    ),
    path(
        "p/<slug:slug>/reviews/<int:queue_id>/adjudicate/",
        review_adjudication_views.review_adjudicate,
        name="review_adjudicate",
    ),
    path("p/<slug:slug>/members/", project_views.members_page, name="members"),
    path("p/<slug:slug>/settings/", project_views.settings_page, name="settings"),
    path(
        "p/<slug:slug>/members/<int:membership_id>/",
        project_views.member_update,
        name="member_update",
    ),
]
