from django.urls import path

from . import views

app_name = "annotation"

urlpatterns = [
    path("", views.project_list, name="project_list"),
    path("account/", views.account_settings, name="account"),
    path("p/<slug:slug>/", views.project_detail, name="project_detail"),
    path("p/<slug:slug>/prompts/<int:prompt_id>/", views.prompt_detail, name="prompt_detail"),
    path("p/<slug:slug>/import/", views.import_page, name="import"),
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
    path("p/<slug:slug>/members/", views.members_page, name="members"),
    path(
        "p/<slug:slug>/members/<int:membership_id>/",
        views.member_update,
        name="member_update",
    ),
]
