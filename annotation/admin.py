from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest

from annotation.projects import models as project_models
from annotation.prompts import models as prompt_models
from annotation.rubrics import models as rubric_models

# The admin's classes are generic to the type checker only: Django's own cannot be
# subscripted at run time (django-stubs-ext, which would patch them, is not a dependency).
if TYPE_CHECKING:
    _MembershipInline = admin.TabularInline[project_models.Membership, project_models.Project]
    _ProjectAdmin = admin.ModelAdmin[project_models.Project]
    _MembershipAdmin = admin.ModelAdmin[project_models.Membership]
    _PromptAdmin = admin.ModelAdmin[prompt_models.Prompt]
    _ResponseAdmin = admin.ModelAdmin[prompt_models.Response]
    _PreferenceLabelAdmin = admin.ModelAdmin[prompt_models.PreferenceLabel]
    _CriterionInline = admin.TabularInline[rubric_models.Criterion, rubric_models.RubricVersion]
    _RubricAdmin = admin.ModelAdmin[rubric_models.Rubric]
    _RubricVersionAdmin = admin.ModelAdmin[rubric_models.RubricVersion]
    _AuditEventAdmin = admin.ModelAdmin[project_models.AuditEvent]
    _RubricReviewDecisionAdmin = admin.ModelAdmin[rubric_models.RubricReviewDecision]
else:
    _MembershipInline = _CriterionInline = admin.TabularInline
    _ProjectAdmin = _MembershipAdmin = _PromptAdmin = _ResponseAdmin = admin.ModelAdmin
    _PreferenceLabelAdmin = _RubricAdmin = _RubricVersionAdmin = admin.ModelAdmin
    _AuditEventAdmin = _RubricReviewDecisionAdmin = admin.ModelAdmin


class MembershipInline(_MembershipInline):
    model = project_models.Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(project_models.Project)
class ProjectAdmin(_ProjectAdmin):
    list_display = ["name", "slug", "allow_self_approval", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(project_models.Membership)
class MembershipAdmin(_MembershipAdmin):
    list_display = ["project", "user", "role"]
    list_filter = ["role"]
    search_fields = ["project__slug", "user__username"]


@admin.register(prompt_models.Prompt)
class PromptAdmin(_PromptAdmin):
    list_display = ["external_id", "project", "created_at"]
    list_filter = ["project"]
    search_fields = ["external_id"]


@admin.register(prompt_models.Response)
class ResponseAdmin(_ResponseAdmin):
    list_display = ["id", "prompt", "source"]
    list_filter = ["source"]
    raw_id_fields = ["prompt"]


@admin.register(prompt_models.PreferenceLabel)
class PreferenceLabelAdmin(_PreferenceLabelAdmin):
    list_display = ["id", "prompt", "source"]
    raw_id_fields = ["prompt", "chosen", "rejected"]


# Shown, and read-only, on a version's page.
CRITERION_FIELDS = ("position", "text", "points", "category", "kind", "tags", "provenance")


class CriterionInline(_CriterionInline):
    model = rubric_models.Criterion
    extra = 0
    fields = CRITERION_FIELDS
    readonly_fields = CRITERION_FIELDS

    def has_add_permission(
        self, request: HttpRequest, obj: rubric_models.RubricVersion | None = None
    ) -> bool:
        return False  # versions are immutable


@admin.register(rubric_models.Rubric)
class RubricAdmin(_RubricAdmin):
    list_display = ["title", "project", "status", "updated_at"]
    list_filter = ["status", "project"]
    raw_id_fields = ["prompt", "current_version", "approved_version"]


@admin.register(rubric_models.RubricVersion)
class RubricVersionAdmin(_RubricVersionAdmin):
    list_display = ["rubric", "number", "author", "author_model", "created_at"]
    raw_id_fields = ["rubric", "parent"]
    inlines = [CriterionInline]


@admin.register(project_models.AuditEvent)
class AuditEventAdmin(_AuditEventAdmin):
    list_display = ["created_at", "project", "actor", "action", "target"]
    list_filter = ["action"]


@admin.register(rubric_models.RubricReviewDecision)
class RubricReviewDecisionAdmin(_RubricReviewDecisionAdmin):
    list_display = ["rubric", "version", "reviewer", "decision", "created_at"]
    list_filter = ["decision"]
    raw_id_fields = ["rubric", "version"]
