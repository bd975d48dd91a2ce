from django.urls import path

from scoring import api

urlpatterns = [
    path("projects/<slug:slug>/endpoints/", api.EndpointListApi.as_view(), name="api-endpoints"),
    path(
        "projects/<slug:slug>/endpoints/<int:pk>/",
        api.EndpointDetailApi.as_view(),
        name="api-endpoint",
    ),
    path("projects/<slug:slug>/coauthor/jobs/", api.JobListApi.as_view(), name="api-jobs"),
    path(
        "projects/<slug:slug>/coauthor/jobs/<int:pk>/",
        api.JobDetailApi.as_view(),
        name="api-job",
    ),
    path(
        "projects/<slug:slug>/proposals/<int:pk>/decide/",
        api.ProposalDecideApi.as_view(),
        name="api-proposal-decide",
    ),
    path("projects/<slug:slug>/exports/", api.ExportListApi.as_view(), name="api-exports"),
    path(
        "projects/<slug:slug>/exports/<int:pk>/",
        api.ExportDetailApi.as_view(),
        name="api-export",
    ),
    path(
        "projects/<slug:slug>/exports/<int:pk>/files/<path:name>",
        api.ExportFileApi.as_view(),
        name="api-export-file",
    ),
]
