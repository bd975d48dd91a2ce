from django.urls import path

from annotation import views

app_name = "annotation"

urlpatterns = [
    path("", views.project_list, name="project_list"),
    path("account/", views.account_settings, name="account"),
    path("p/<slug:slug>/", views.project_detail, name="project_detail"),
    path("p/<slug:slug>/prompts/<int:prompt_id>/", views.prompt_detail, name="prompt_detail"),
    path(
        "p/<slug:slug>/prompts/<int:prompt_id>/rubric/",
        views.prompt_rubric_start,
        name="prompt_rubric_start",
    ),
    path("p/<slug:slug>/import/", views.import_page, name="import"),
    path("p/<slug:slug>/import/<int:job_id>/", views.import_job, name="import_job"),
    path("p/<slug:slug>/rubrics/new/", views.project_rubric_create, name="project_rubric_create"),
    path("p/<slug:slug>/rubrics/<int:rubric_id>/", views.rubric_page, name="rubric_page"),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/editor/", views.rubric_editor, name="rubric_editor"
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/draft/<slug:op>/",
        views.rubric_draft,
        name="rubric_draft",
    ),
    path("p/<slug:slug>/rubrics/<int:rubric_id>/save/", views.rubric_save, name="rubric_save"),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/resolve/",
        views.rubric_resolve,
        name="rubric_resolve",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/workflow/",
        views.rubric_workflow,
        name="rubric_workflow",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/comments/",
        views.rubric_comment,
        name="rubric_comment",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/comments/<int:comment_id>/resolve/",
        views.rubric_comment_resolve,
        name="rubric_comment_resolve",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/export/", views.rubric_export, name="rubric_export"
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/history/",
        views.rubric_history,
        name="rubric_history",
    ),
    path("p/<slug:slug>/rubrics/<int:rubric_id>/diff/", views.rubric_diff, name="rubric_diff"),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/restore/<int:number>/",
        views.rubric_restore,
        name="rubric_restore",
    ),
    path("p/<slug:slug>/reviews/", views.review_queues, name="review_queues"),
    path("p/<slug:slug>/reviews/mine/", views.review_mine, name="review_mine"),
    path("p/<slug:slug>/reviews/<int:queue_id>/review/", views.review_next, name="review_next"),
    path(
        "p/<slug:slug>/reviews/<int:queue_id>/items/<int:slot_id>/",
        views.review_item,
        name="review_item",
    ),
    path(
        "p/<slug:slug>/reviews/<int:queue_id>/items/<int:slot_id>/commit/",
        views.review_commit,
        name="review_commit",
    ),
    path(
        "p/<slug:slug>/reviews/<int:queue_id>/items/<int:slot_id>/flag/",
        views.review_flag,
        name="review_flag",
    ),
    path("p/<slug:slug>/reviews/<int:queue_id>/undo/", views.review_undo, name="review_undo"),
    path(
        "p/<slug:slug>/reviews/<int:queue_id>/adjudicate/",
        views.review_adjudicate,
        name="review_adjudicate",
    ),
    path("p/<slug:slug>/members/", views.members_page, name="members"),
    path(
        "p/<slug:slug>/members/<int:membership_id>/",
        views.member_update,
        name="member_update",
    ),
]
