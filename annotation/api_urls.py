from django.urls import path

from annotation import api, api_imports, api_rubrics

urlpatterns = [
    path("projects/", api.ProjectListApi.as_view(), name="api-projects"),
    path("projects/<slug:slug>/", api.ProjectDetailApi.as_view(), name="api-project"),
    path("projects/<slug:slug>/prompts/", api.PromptListApi.as_view(), name="api-prompts"),
    path(
        "projects/<slug:slug>/prompts/<int:pk>/",
        api.PromptDetailApi.as_view(),
        name="api-prompt",
    ),
    path("projects/<slug:slug>/responses/", api.ResponseListApi.as_view(), name="api-responses"),
    path("projects/<slug:slug>/rubrics/", api_rubrics.RubricListApi.as_view(), name="api-rubrics"),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/",
        api_rubrics.RubricDetailApi.as_view(),
        name="api-rubric",
    ),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/versions/",
        api_rubrics.RubricVersionListApi.as_view(),
        name="api-rubric-versions",
    ),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/workflow/",
        api_rubrics.RubricWorkflowApi.as_view(),
        name="api-rubric-workflow",
    ),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/versions/<int:number>/",
        api_rubrics.RubricVersionDetailApi.as_view(),
        name="api-rubric-version",
    ),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/comments/",
        api_rubrics.RubricCommentListApi.as_view(),
        name="api-rubric-comments",
    ),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/comments/<int:comment_id>/resolve/",
        api_rubrics.RubricCommentResolveApi.as_view(),
        name="api-rubric-comment-resolve",
    ),
    path(
        "projects/<slug:slug>/rubrics/<int:pk>/export/",
        api_rubrics.RubricExportApi.as_view(),
        name="api-rubric-export",
    ),
    path("projects/<slug:slug>/members/", api.MemberListApi.as_view(), name="api-members"),
    path(
        "projects/<slug:slug>/members/<int:pk>/",
        api.MemberDetailApi.as_view(),
        name="api-member",
    ),
    path("projects/<slug:slug>/import/", api_imports.ImportApi.as_view(), name="api-import"),
    path(
        "projects/<slug:slug>/imports/<int:pk>/",
        api_imports.ImportJobApi.as_view(),
        name="api-import-job",
    ),
]
