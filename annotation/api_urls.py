from django.urls import path

from annotation.projects import api as project_api
from annotation.prompts import api as api_imports
from annotation.prompts import api as prompt_api
from annotation.reviews import api as review_api
from annotation.rubrics import api as rubric_api

urlpatterns = [
    path("projects/", project_api.ProjectListApi.as_view(), name="api-projects"),
    path("projects/<slug:slug>/", project_api.ProjectDetailApi.as_view(), name="api-project"),
    path("projects/<slug:slug>/prompts/", prompt_api.PromptListApi.as_view(), name="api-prompts"),
    path(
        "projects/<slug:slug>/prompts/<int:pk>/",
        prompt_api.PromptDetailApi.as_view(),
        name="api-prompt",
    ),
    path(
        "projects/<slug:slug>/responses/",
        prompt_api.ResponseListApi.as_view(),
        name="api-responses",
    ),
    path("projects/<slug:slug>/rubrics/", rubric_api.RubricListApi.as_view(), name="api-rubrics"),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/",
        rubric_api.RubricDetailApi.as_view(),
        name="api-rubric",
    ),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/versions/",
        rubric_api.RubricVersionListApi.as_view(),
        name="api-rubric-versions",
    ),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/workflow/",
        rubric_api.RubricWorkflowApi.as_view(),
        name="api-rubric-workflow",
    ),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/versions/<int:number>/",
        rubric_api.RubricVersionDetailApi.as_view(),
        name="api-rubric-version",
    ),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/comments/",
        rubric_api.RubricCommentListApi.as_view(),
        name="api-rubric-comments",
    ),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/comments/<int:comment_id>/resolve/",
        rubric_api.RubricCommentResolveApi.as_view(),
        name="api-rubric-comment-resolve",
    ),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/export/",
        rubric_api.RubricExportApi.as_view(),
        name="api-rubric-export",
    ),
    path("projects/<slug:slug>/members/", project_api.MemberListApi.as_view(), name="api-members"),
    path(
        "projects/<slug:slug>/members/<int:pk>/",
        project_api.MemberDetailApi.as_view(),
        name="api-member",
    ),
    path("projects/<slug:slug>/import/", api_imports.ImportApi.as_view(), name="api-import"),
    path(
        "projects/<slug:slug>/imports/<int:pk>/",
        api_imports.ImportJobApi.as_view(),
        name="api-import-job",
    ),
    path(
        "projects/<slug:slug>/review-queues/",
        review_api.ReviewQueueListApi.as_view(),
        name="api-review-queues",
    ),
    path(
        "projects/<slug:slug>/review-queues/<int:pk>/",
        review_api.ReviewQueueDetailApi.as_view(),
        name="api-review-queue",
    ),
    path(
        "projects/<slug:slug>/agreement/", review_api.AgreementApi.as_view(), name="api-agreement"
    ),
]
