"""The site admin's side of the scoring app: LLM providers, for superusers only (a provider
decides where one of the site's API keys is sent)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest

from annotation.errors import ApplicationError
from scoring.judges.models import LLMProvider
from scoring.judges.services import provider_problems, provider_save

# Generic to the type checker only: Django's form and admin classes cannot be subscripted at
# run time (django-stubs-ext, which would patch them, is not a dependency).
if TYPE_CHECKING:
    _ProviderForm = forms.ModelForm[LLMProvider]
    _ProviderAdmin = admin.ModelAdmin[LLMProvider]
else:
    _ProviderForm = forms.ModelForm
    _ProviderAdmin = admin.ModelAdmin


class LLMProviderForm(_ProviderForm):
    class Meta:
        model = LLMProvider
        fields = ["name", "base_url", "api_key_env", "enabled", "projects", "note"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data  # what ModelForm.clean returns
        draft = LLMProvider(
            name=data.get("name") or "",
            base_url=data.get("base_url") or "",
            api_key_env=data.get("api_key_env") or "",
            note=data.get("note") or "",
        )
        for problem in provider_problems(draft):
            self.add_error(None, problem)
        return data


@admin.register(LLMProvider)
class LLMProviderAdmin(_ProviderAdmin):
    form = LLMProviderForm
    list_display = ["name", "base_url", "api_key_env", "enabled", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "base_url"]
    filter_horizontal = ["projects"]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """A new provider starts on the site's OPENAI_BASE_URL and its usual key variable."""
        return {
            "base_url": settings.OPENAI_BASE_URL,
            "api_key_env": "OPENAI_API_KEY",
            **super().get_changeform_initial_data(request),
        }

    # Staff users with model permissions are not enough: only superusers.
    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def save_model(self, request: HttpRequest, obj: LLMProvider, form: Any, change: bool) -> None:
        try:
            provider_save(provider=obj)
        except ApplicationError as exc:  # the form's clean checked the same: a race
            raise forms.ValidationError(exc.message) from None
