"""Judge endpoints and a project's co-authoring settings."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from annotation.errors import ApplicationError, check_text
from annotation.models import Project
from annotation.services.audit import audit

from ..engine.gateway import GatewayError
from ..llm import gateway_for
from ..models import CoauthorSettings, JudgeEndpoint

FIELDS = (
    "name",
    "backend",
    "base_url",
    "model",
    "api_key_env",
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
)
DEVICE = re.compile(r"^(auto|cpu|cuda(:[0-9]{1,2})?)$")


def key_variable_allowed(name: str) -> bool:
    """Endpoints name the variable holding their key, and any project owner may point an
    endpoint at any URL: so only variables the site admin set aside for LLM keys may be
    named, never the studio's own secrets (SECRET_KEY, DATABASE_URL…)."""
    return name in settings.LLM_KEY_ENV_ALLOWED or (
        name.startswith(settings.LLM_KEY_ENV_PREFIX)
        and len(name) > len(settings.LLM_KEY_ENV_PREFIX)
    )


def model_path_allowed(path: str) -> bool:
    """A local model is read from the GPU workers' disk, so an owner may only name a
    directory under one of LOCAL_MODEL_DIRS, set by the site admin."""
    candidate = Path(path)
    if not candidate.is_absolute() or ".." in candidate.parts:
        return False
    real = candidate.resolve()  # a link under a root must not lead out of it
    roots = [Path(root).resolve() for root in settings.LOCAL_MODEL_DIRS if Path(root).is_absolute()]
    return any(real.is_relative_to(root) for root in roots)


def _clean_local(endpoint: JudgeEndpoint) -> None:
    if not endpoint.model_path:
        raise ApplicationError("A local endpoint needs the directory of its model.")
    check_text(endpoint.model_path, "model path")
    if not model_path_allowed(endpoint.model_path):
        roots = ", ".join(str(r) for r in settings.LOCAL_MODEL_DIRS) or "none configured"
        raise ApplicationError(
            f"“{endpoint.model_path}” is not an absolute directory under LOCAL_MODEL_DIRS "
            f"({roots}), set by the site admin."
        )
    if endpoint.dtype not in JudgeEndpoint.Dtype.values:
        raise ApplicationError(
            f"Unknown dtype “{endpoint.dtype}”: auto, bfloat16, float16 or float32."
        )
    if not DEVICE.match(endpoint.device or ""):
        raise ApplicationError(f"Unknown device “{endpoint.device}”: auto, cpu, cuda or cuda:N.")
    if not 256 <= endpoint.batch_tokens <= 1_048_576:
        raise ApplicationError("Tokens per batch are between 256 and 1,048,576.")
    if not 0 < endpoint.threshold < 1:
        raise ApplicationError("The threshold is a probability between 0 and 1 (exclusive).")
    endpoint.model = Path(endpoint.model_path).name  # what runs record as the model
    endpoint.base_url = endpoint.api_key_env = ""  # nothing to call, no key to read


def _clean(endpoint: JudgeEndpoint) -> None:
    if endpoint.backend not in JudgeEndpoint.Backend.values:
        raise ApplicationError(f"Unknown backend “{endpoint.backend}”: openai or local.")
    if endpoint.backend == JudgeEndpoint.Backend.LOCAL:
        _clean_local(endpoint)
    elif not endpoint.base_url.startswith(("http://", "https://")):
        raise ApplicationError("The base URL must start with http:// or https://.")
    for name in ("name", "base_url", "model"):
        check_text(getattr(endpoint, name), name)
    if endpoint.api_key_env and not key_variable_allowed(endpoint.api_key_env):
        raise ApplicationError(
            f"“{endpoint.api_key_env}” is not a variable endpoints may read: use one whose name "
            f"starts with {settings.LLM_KEY_ENV_PREFIX} or one of LLM_KEY_ENV_ALLOWED "
            f"({', '.join(settings.LLM_KEY_ENV_ALLOWED) or 'none'}), set by the site admin."
        )
    for name in ("rpm", "tpm"):
        if getattr(endpoint, name) is not None and getattr(endpoint, name) < 1:
            raise ApplicationError(f"{name.upper()} is at least 1 (leave it empty for no limit).")
    if endpoint.max_concurrency < 1 or endpoint.max_concurrency > 256:
        raise ApplicationError("Max concurrency is between 1 and 256.")
    if endpoint.timeout <= 0 or endpoint.max_tokens < 1:
        raise ApplicationError("The timeout and max tokens must be positive.")
    if not 0 <= endpoint.temperature <= 2:
        raise ApplicationError("The temperature is between 0 and 2.")
    if min(endpoint.price_input_per_m, endpoint.price_output_per_m) < 0:
        raise ApplicationError("Prices cannot be negative.")
    try:
        endpoint.full_clean(exclude=["project"])
    except ValidationError as exc:
        messages = [f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()]
        raise ApplicationError("; ".join(messages)) from None


@transaction.atomic
def endpoint_save(  # type: ignore[no-untyped-def]
    *, project: Project, actor, data: dict[str, Any], endpoint: JudgeEndpoint | None = None
) -> JudgeEndpoint:
    """Create or update an endpoint. ``data`` holds the FIELDS; an API key value is never
    accepted, only the name of the variable that holds it."""
    endpoint = endpoint or JudgeEndpoint(project=project)
    for name in FIELDS:
        if name in data:
            setattr(endpoint, name, data[name])
    _clean(endpoint)
    try:
        with transaction.atomic():
            endpoint.save()
    except IntegrityError:
        raise ApplicationError(
            f"This project already has an endpoint named “{endpoint.name}”."
        ) from None
    settings_, _ = CoauthorSettings.objects.get_or_create(project=project)
    if settings_.endpoint_id is None and endpoint.backend == JudgeEndpoint.Backend.OPENAI:
        settings_.endpoint = endpoint
        settings_.save(update_fields=["endpoint"])
    audit(
        project=project,
        actor=actor,
        action="endpoint.save",
        target=str(endpoint.pk),
        name=endpoint.name,
    )
    return endpoint


@transaction.atomic
def endpoint_delete(*, endpoint: JudgeEndpoint, actor) -> None:  # type: ignore[no-untyped-def]
    audit(project=endpoint.project, actor=actor, action="endpoint.delete", target=str(endpoint.pk))
    endpoint.delete()


def endpoint_test(*, endpoint: JudgeEndpoint) -> str:
    """Ask the endpoint for its models: a short message saying what was found. A local
    model is looked for on this machine's disk (the GPU workers load it)."""
    if endpoint.backend == JudgeEndpoint.Backend.LOCAL:
        return _local_test(endpoint)

    async def probe() -> list[str]:
        async with gateway_for(endpoint) as gateway:
            return await gateway.list_models()

    try:
        models = asyncio.run(probe())
    except GatewayError as exc:
        raise ApplicationError(f"“{endpoint.name}” did not answer: {exc.message}") from None
    if endpoint.model not in models:
        listed = ", ".join(models[:10]) or "none"
        return f"Connected, but the model “{endpoint.model}” is not listed (models: {listed})."
    return f"Connected: “{endpoint.model}” is available ({len(models)} models listed)."


def _local_test(endpoint: JudgeEndpoint) -> str:
    directory = Path(endpoint.model_path)
    if not directory.is_dir():
        return (
            f"“{endpoint.model_path}” is not visible from the web server; the GPU workers "
            "load it when a run starts and fail the run with the reason if they cannot."
        )
    if not (directory / "config.json").is_file():
        raise ApplicationError(
            f"“{endpoint.model_path}” has no config.json: not a model directory."
        )
    weights = sorted(p.name for p in (*directory.glob("*.safetensors"), *directory.glob("*.bin")))
    if not weights:
        raise ApplicationError(f"“{endpoint.model_path}” has no weights (.safetensors or .bin).")
    return f"Found the model: config.json and {len(weights)} weight file(s); GPU workers load it."


@transaction.atomic
def coauthor_settings_save(  # type: ignore[no-untyped-def]
    *, project: Project, actor, data: dict[str, Any]
) -> CoauthorSettings:
    settings_, _ = CoauthorSettings.objects.select_for_update().get_or_create(project=project)
    if data.get("endpoint") not in (None, ""):
        from .coauthor import endpoint_for

        settings_.endpoint = endpoint_for(project, data["endpoint"])
    if data.get("style") is not None:
        if data["style"] not in CoauthorSettings.Style.values:
            raise ApplicationError(f"Unknown rubric style “{data['style']}”.")
        settings_.style = data["style"]
    for name, low, high in (("contrastive_tries", 1, 10), ("refine_rounds", 1, 5)):
        if data.get(name) not in (None, ""):
            try:
                value = int(data[name])
            except (TypeError, ValueError):
                raise ApplicationError(
                    f"{name.replace('_', ' ')} must be a whole number."
                ) from None
            if not low <= value <= high:
                raise ApplicationError(f"{name.replace('_', ' ')} is between {low} and {high}.")
            setattr(settings_, name, value)
    settings_.save()
    audit(project=project, actor=actor, action="coauthor.settings", target=str(project.pk))
    return settings_
