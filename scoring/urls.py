from django.urls import path

from scoring import views, views_agreement, views_duplicates, views_exports

app_name = "scoring"

urlpatterns = [
    path("p/<slug:slug>/judges/", views.judges_page, name="judges"),
    path("p/<slug:slug>/judges/<int:endpoint_id>/", views.endpoint_edit, name="endpoint_edit"),
    path(
        "p/<slug:slug>/judges/<int:endpoint_id>/test/",
        views.endpoint_test,
        name="endpoint_test",
    ),
    path(
        "p/<slug:slug>/prompts/<int:prompt_id>/coauthor/",
        views.coauthor_panel,
        name="coauthor_panel",
    ),
    path(
        "p/<slug:slug>/prompts/<int:prompt_id>/coauthor/start/",
        views.coauthor_start,
        name="coauthor_start",
    ),
    path(
        "p/<slug:slug>/proposals/<int:proposal_id>/decide/",
        views.proposal_decide,
        name="proposal_decide",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/duplicates/",
        views_duplicates.duplicates_panel,
        name="duplicates_panel",
    ),
    path(
        "p/<slug:slug>/rubrics/<int:rubric_id>/duplicates/merge/",
        views_duplicates.duplicates_merge,
        name="duplicates_merge",
    ),
    path("p/<slug:slug>/coauthor/", views.batch_page, name="batch"),
    path("p/<slug:slug>/coauthor/jobs/<int:job_id>/", views.job_page, name="job"),
    path("p/<slug:slug>/coauthor/jobs/<int:job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("p/<slug:slug>/runs/", views.runs_page, name="runs"),
    path("p/<slug:slug>/runs/<int:run_id>/", views.run_page, name="run"),
    path("p/<slug:slug>/runs/<int:run_id>/control/", views.run_control, name="run_control"),
    path(
        "p/<slug:slug>/runs/<int:run_id>/review/", views.run_review_queue, name="run_review_queue"
    ),
    path(
        "p/<slug:slug>/runs/<int:run_id>/responses/<int:response_id>/",
        views.run_response,
        name="run_response",
    ),
    path("p/<slug:slug>/agreement/", views_agreement.agreement_page, name="agreement"),
    path("p/<slug:slug>/agreement.csv", views_agreement.agreement_csv, name="agreement_csv"),
    path("p/<slug:slug>/exports/", views_exports.exports_page, name="exports"),
    path("p/<slug:slug>/exports/<int:export_id>/", views_exports.export_card, name="export"),
    path(
        "p/<slug:slug>/exports/<int:export_id>/delete/",
        views_exports.export_delete,
        name="export_delete",
    ),
    path(
        "p/<slug:slug>/exports/<int:export_id>/files/<path:name>",
        views_exports.export_download,
        name="export_file",
    ),
]
