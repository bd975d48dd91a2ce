"""API shape of judge endpoints (never a key: only the provider's name)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from scoring.judges.models import JudgeEndpoint, LLMProvider
from scoring.judges.services import KEY_FIELDS, NO_KEY_FIELDS

NUMBERS = (
    "temperature",
    "max_tokens",
    "timeout",
    "max_concurrency",
    "rpm",
    "tpm",
    "price_input_per_m",
    "price_output_per_m",
    "batch_tokens",
    "threshold",
)


class EndpointSerializer(serializers.ModelSerializer[JudgeEndpoint]):
    provider = serializers.PrimaryKeyRelatedField(
        queryset=LLMProvider.objects.filter(enabled=True),
        allow_null=True,
        required=False,
        help_text="A provider the site admin made available to the project (its base URL and "
        "key); null: no key is sent, to the base URL given here.",
    )
    provider_name = serializers.CharField(source="provider.name", read_only=True, default=None)
    key_variable = serializers.CharField(
        source="provider.api_key_env",
        read_only=True,
        default=None,
        help_text="The NAME of the provider's key variable (never the key).",
    )

    class Meta:
        model = JudgeEndpoint
        fields = [
            "id",
            "name",
            "backend",
            "provider",
            "provider_name",
            "key_variable",
            "base_url",
            "model",
            "temperature",
            "max_tokens",
            "timeout",
            "max_concurrency",
            "rpm",
            "tpm",
            "price_input_per_m",
            "price_output_per_m",
            "model_path",
            "dtype",
            "device",
            "batch_tokens",
            "threshold",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {
            "model": {"required": False, "allow_blank": True},
            **{
                name: {"error_messages": {"invalid": f"{name.replace('_', ' ')} must be a number."}}
                for name in NUMBERS
            },
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Not silently dropped: someone sending a key variable must learn it is not used.
        if any(name in self.initial_data for name in KEY_FIELDS):
            raise serializers.ValidationError({"api_key_env": NO_KEY_FIELDS})
        return attrs
