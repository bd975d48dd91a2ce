from django.contrib import admin

from annotation.projects import models as project_models
from annotation.prompts import models as prompt_models
from annotation.rubrics import models as rubric_models


class MembershipInline(admin.TabularInline):
    model = project_models.Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(project_models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "allow_self_approval", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(project_models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role"]
    list_filter = ["role"]
    search_fields = ["project__slug", "user__username"]


@admin.register(prompt_models.Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["external_id", "project", "created_at"]
    list_filter = ["project"]
    search_fields = ["external_id"]


@admin.register(prompt_models.Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt", "source"]
    list_filter = ["source"]
    raw_id_fields = ["prompt"]


@admin.register(prompt_models.PreferenceLabel)
class PreferenceLabelAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt", "source"]
    raw_id_fields = ["prompt", "chosen", "rejected"]


class CriterionInline(admin.TabularInline):
    model = rubric_models.Criterion
    extra = 0
    fields = ["position", "text", "points", "category", "kind", "tags", "provenance"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # versions are immutable


@admin.register(rubric_models.Rubric)
class RubricAdmin(admin.ModelAdmin):
    list_display = ["title", "project", "status", "updated_at"]
    list_filter = ["status", "project"]
    raw_id_fields = ["prompt", "current_version", "approved_version"]


@admin.register(rubric_models.RubricVersion)
class RubricVersionAdmin(admin.ModelAdmin):
    list_display = ["rubric", "number", "author", "author_model", "created_at"]
    raw_id_fields = ["rubric", "parent"]
    inlines = [CriterionInline]


@admin.register(project_models.AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "project", "actor", "action", "target"]
    list_filter = ["action"]


@admin.register(rubric_models.RubricReviewDecision)
class RubricReviewDecisionAdmin(admin.ModelAdmin):
    list_display = ["rubric", "version", "reviewer", "decision", "created_at"]
    list_filter = ["decision"]
    raw_id_fields = ["rubric", "version"]
