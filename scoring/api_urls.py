from django.urls import path

from scoring.coauthoring import api as coauthor_api
from scoring.datasets import api as dataset_api
from scoring.insights import api as insights_api
from scoring.judges import api as judge_api
from scoring.probes import api as probes_api
from scoring.runs import api as run_api

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
    path("projects/<slug:slug>/runs/", run_api.RunListApi.as_view(), name="api-runs"),
    path(
        "projects/<slug:slug>/runs/preview/",
        run_api.RunPreviewApi.as_view(),
        name="api-run-preview",
    ),
    path("projects/<slug:slug>/runs/<int:pk>/", run_api.RunDetailApi.as_view(), name="api-run"),
    path(
        "projects/<slug:slug>/runs/<int:pk>/results/",
        run_api.RunResultsApi.as_view(),
        name="api-run-results",
    ),
    path(
        "projects/<slug:slug>/runs/<int:pk>/control/",
        run_api.RunControlApi.as_view(),
        name="api-run-control",
    ),
    path(
        "projects/<slug:slug>/runs/<int:pk>/review-queue/",
        run_api.RunReviewQueueApi.as_view(),
        name="api-run-review-queue",
    ),
    path(
        "projects/<slug:slug>/analytics/runs/<int:pk>/",
        insights_api.RunAnalyticsApi.as_view(),
        name="api-run-analytics",
    ),
    path("projects/<slug:slug>/probes/", probes_api.ProbeListApi.as_view(), name="api-probes"),
    path(
        "projects/<slug:slug>/probes/<int:pk>/",
        probes_api.ProbeDetailApi.as_view(),
        name="api-probe",
    ),
]
