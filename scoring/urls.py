from django.urls import path

from annotation.reviews import agreement_views as views_agreement
from scoring.analytics import views as analytics_views
from scoring.coauthoring import views as coauthor_views
from scoring.datasets import views as dataset_views
from scoring.insights import views as insights_views
from scoring.judges import views as judge_views
from scoring.probes import views as probe_views
from scoring.runs import verdict_views
from scoring.runs import views as run_views

app_name = "scoring"

urlpatterns = [
    path("p/<slug:slug>/judges/", judge_views.judges_page, name="judges"),
    path(
        "p/<slug:slug>/judges/<int:endpoint_id>/", judge_views.endpoint_edit, name="endpoint_edit"
    ),
    path(
        "p/<slug:slug>/judges/<int:endpoint_id>/test/",
        judge_views.endpoint_test,
        name="endpoint_test",
    ),
    path(
        "p/<slug:slug>/prompts/<int:prompt_id>/coauthor/",
        coauthor_views.coauthor_panel,
        name="coauthor_panel",
    ),
    path(
        "p/<slug:slug>/prompts/<int:prompt_id>/coauthor/start/",
        coauthor_views.coauthor_start,
        name="coauthor_start",
    ),
    path(
        "p/<slug:slug>/proposals/<int:proposal_id>/decide/",
        coauthor_views.proposal_decide,
        name="proposal_decide",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/duplicates/",
        analytics_views.duplicates_panel,
        name="duplicates_panel",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/duplicates/merge/",
        analytics_views.duplicates_merge,
        name="duplicates_merge",
    ),
    path("p/<slug:slug>/coauthor/", coauthor_views.batch_page, name="batch"),
    path("p/<slug:slug>/coauthor/jobs/<int:job_id>/", coauthor_views.job_page, name="job"),
    path(
        "p/<slug:slug>/coauthor/jobs/<int:job_id>/cancel/",
        coauthor_views.job_cancel,
        name="job_cancel",
    ),
    path("p/<slug:slug>/runs/", run_views.runs_page, name="runs"),
    path("p/<slug:slug>/probes/", probe_views.probes_page, name="probes"),
    path("p/<slug:slug>/probes/<int:probe_id>/", probe_views.probe_page, name="probe"),
    path("p/<slug:slug>/probes/<int:probe_id>/report.csv", probe_views.probe_csv, name="probe_csv"),
    path(
        "p/<slug:slug>/prompts/<int:prompt_id>/verdicts/",
        verdict_views.prompt_verdicts_panel,
        name="prompt_verdicts",
    ),
    path(
        "p/<slug:slug>/prompts/<int:prompt_id>/verdicts/regrade/",
        verdict_views.prompt_regrade,
        name="prompt_regrade",
    ),
    path("p/<slug:slug>/runs/<int:run_id>/", run_views.run_page, name="run"),
    path("p/<slug:slug>/runs/<int:run_id>/control/", run_views.run_control, name="run_control"),
    path(
        "p/<slug:slug>/runs/<int:run_id>/review/",
        run_views.run_review_queue,
        name="run_review_queue",
    ),
    path(
        "p/<slug:slug>/runs/<int:run_id>/responses/<int:response_id>/",
        run_views.run_response,
        name="run_response",
    ),
    path("p/<slug:slug>/agreement/", views_agreement.agreement_page, name="agreement"),
    path("p/<slug:slug>/analytics/", insights_views.analytics_page, name="analytics"),
    path(
        "p/<slug:slug>/analytics/<int:run_id>/compute/",
        insights_views.analytics_compute,
        name="analytics_compute",
    ),
    path(
        "p/<slug:slug>/analytics/<int:run_id>/critique/",
        insights_views.analytics_critique,
        name="analytics_critique",
    ),
    path(
        "p/<slug:slug>/analytics/<int:run_id>/<slug:table>.csv",
        insights_views.analytics_csv,
        name="analytics_csv",
    ),
    path("p/<slug:slug>/agreement.csv", views_agreement.agreement_csv, name="agreement_csv"),
    path("p/<slug:slug>/exports/", dataset_views.exports_page, name="exports"),
    path("p/<slug:slug>/exports/<int:export_id>/", dataset_views.export_card, name="export"),
    path(
        "p/<slug:slug>/exports/<int:export_id>/delete/",
        dataset_views.export_delete,
        name="export_delete",
    ),
    path(
        "p/<slug:slug>/exports/<int:export_id>/files/<path:name>",
        dataset_views.export_download,
        name="export_file",
    ),
]
