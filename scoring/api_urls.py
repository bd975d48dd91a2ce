from django.urls import path

from scoring.coauthoring import api as coauthor_api
from scoring.datasets import api as dataset_api
from scoring.judges import api as judge_api

urlpatterns = [
    path(
        "projects/<slug:slug>/endpoints/", judge_api.EndpointListApi.as_view(), name="api-endpoints"
    ),
    path(
        "projects/<slug:slug>/endpoints/<int:pk>/",
        judge_api.EndpointDetailApi.as_view(),
        name="api-endpoint",
    ),
    path("projects/<slug:slug>/coauthor/jobs/", coauthor_api.JobListApi.as_view(), name="api-jobs"),
    path(
        "projects/<slug:slug>/coauthor/jobs/<int:pk>/",
        coauthor_api.JobDetailApi.as_view(),
        name="api-job",
    ),
    path(
        "projects/<slug:slug>/proposals/<int:pk>/decide/",
        coauthor_api.ProposalDecideApi.as_view(),
        name="api-proposal-decide",
    ),
    path("projects/<slug:slug>/exports/", dataset_api.ExportListApi.as_view(), name="api-exports"),
    path(
        "projects/<slug:slug>/exports/<int:pk>/",
        dataset_api.ExportDetailApi.as_view(),
        name="api-export",
    ),
    path(
        "projects/<slug:slug>/exports/<int:pk>/files/<path:name>",
        dataset_api.ExportFileApi.as_view(),
        name="api-export-file",
    ),
]
