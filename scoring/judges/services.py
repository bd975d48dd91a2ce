"""Judge endpoints, the site's LLM providers they are made on, and a project's
co-authoring settings."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from annotation.errors import ApplicationError, check_text
from annotation.projects.models import Project
from annotation.projects.services import audit
from scoring.coauthoring.models import CoauthorSettings
from scoring.engine.gateway import Gateway
from scoring.engine.gateway_types import GatewayError
from scoring.engine.netguard import literal_address, url_problems
from scoring.judges.gateways import (
    gateway_for,
    key_variable_allowed,
    network_policy,
    provider_usable,
)
from scoring.judges.models import JudgeEndpoint, LLMProvider
from scoring.judges.selectors import providers_for

FIELDS = (
    "name",
    "backend",
    "provider",
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
)
DEVICE = re.compile(r"^(auto|cpu|cuda(:[0-9]{1,2})?)$")


# What an owner might send to choose a key; keys are chosen by choosing a provider.
KEY_FIELDS = ("api_key_env", "api_key")
NO_KEY_FIELDS = (
    "Endpoints do not name an API key: choose a provider the site admin set up (its key is "
    "sent to its base URL only), or no provider for a server that needs no key."
)


def base_url_problem(url: str) -> str | None:
    """Why ``url`` may not be a base URL, checked when it is saved: its shape, and a host
    written as an internal IP address (in any spelling) the site's allowlist does not name.
    Host names are checked on every connection, where their addresses are known."""
    problems = url_problems(url)
    if problems:
        return f"“{url}”: {'; '.join(problems)}."
    parts = urlsplit(url)
    address = literal_address(parts.hostname or "")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    policy = network_policy()
    if address is not None and not policy.permits(parts.hostname or "", address, port):
        return (
            f"“{url}” is an internal address ({address}, port {port}): the site admin must "
            f"allow it in LLM_PRIVATE_HOSTS (allowed now: {policy})."
        )
    return None


def allowed_model_dir(path: str) -> Path | None:
    """The real directory ``path`` leads to, when it is under one of LOCAL_MODEL_DIRS (set
    by the site admin); None otherwise. Links are resolved first: a link under a root must
    not lead out of it."""
    candidate = Path(path)
    if not candidate.is_absolute() or ".." in candidate.parts:
        return None
    real = candidate.resolve()
    roots = [Path(root).resolve() for root in settings.LOCAL_MODEL_DIRS if Path(root).is_absolute()]
    return real if any(real.is_relative_to(root) for root in roots) else None


def model_path_allowed(path: str) -> bool:
    """A local model is read from the GPU workers' disk, so an owner may only name a
    directory under one of LOCAL_MODEL_DIRS, set by the site admin."""
    return allowed_model_dir(path) is not None


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
    endpoint.base_url = ""  # nothing to call, no key to read
    endpoint.provider = None


def _clean_server(endpoint: JudgeEndpoint) -> None:
    """An endpoint on a server: the provider's base URL, or a base URL of its own; a
    logprob judge's threshold."""
    if endpoint.provider is not None:
        endpoint.base_url = endpoint.provider.base_url  # where its key may go, and only there
    else:
        if not endpoint.base_url:
            raise ApplicationError(
                "An endpoint without a provider needs its base URL (e.g. http://host:8000/v1)."
            )
        problem = base_url_problem(endpoint.base_url)
        if problem:
            raise ApplicationError(problem)
    if endpoint.backend == JudgeEndpoint.Backend.OPENAI_LOGPROBS and not (
        0 < endpoint.threshold < 1
    ):
        raise ApplicationError("The threshold is a probability between 0 and 1 (exclusive).")


def _clean(endpoint: JudgeEndpoint) -> None:
    if endpoint.backend not in JudgeEndpoint.Backend.values:
        raise ApplicationError(
            f"Unknown backend “{endpoint.backend}”: {', '.join(JudgeEndpoint.Backend.values)}."
        )
    for name in ("name", "base_url", "model"):
        check_text(getattr(endpoint, name), name)
    if endpoint.backend == JudgeEndpoint.Backend.LOCAL:
        _clean_local(endpoint)
    else:
        _clean_server(endpoint)
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


def _provider(project: Project, value: Any, current: LLMProvider | None) -> LLMProvider | None:
    """The provider ``value`` (a provider, its id, or empty for none) names, if this
    project may use it. Keeping the current one needs no check (an edit of other fields
    of an endpoint whose provider was disabled since)."""
    if value in (None, ""):
        return None
    if isinstance(value, LLMProvider):
        pk: Any = value.pk
    else:
        text = str(value)
        if not (text.isascii() and text.isdigit()):
            raise ApplicationError(f"“{text}” is not a provider id.")
        pk = int(text)
    if current is not None and current.pk == pk:
        return current
    provider = providers_for(project=project).filter(pk=pk).first()
    if provider is None or provider_usable(provider, project.pk):
        raise ApplicationError(
            "Choose one of the providers the site admin made available to this project."
        )
    return provider


@transaction.atomic
def endpoint_save(
    *,
    project: Project,
    actor: User | AnonymousUser | None,
    data: dict[str, Any],
    endpoint: JudgeEndpoint | None = None,
) -> JudgeEndpoint:
    """Create or update an endpoint. ``data`` holds the FIELDS. No key is ever accepted, nor
    the name of a variable holding one: an endpoint on a provider uses the provider's key
    and base URL (a different base URL is refused), one without a provider sends no key."""
    if any(data.get(name) not in (None, "") for name in KEY_FIELDS):
        raise ApplicationError(NO_KEY_FIELDS)
    endpoint = endpoint or JudgeEndpoint(project=project)
    current = endpoint.provider if endpoint.pk else None
    for name in FIELDS:
        if name in data:
            if name == "provider":
                endpoint.provider = _provider(project, data[name], current)
            else:
                setattr(endpoint, name, data[name])
    wanted_url = str(data.get("base_url") or "").rstrip("/")
    if (
        endpoint.provider is not None
        and endpoint.backend != JudgeEndpoint.Backend.LOCAL
        and wanted_url
        and wanted_url != endpoint.provider.base_url.rstrip("/")
    ):
        raise ApplicationError(
            f"An endpoint on the provider “{endpoint.provider.name}” sends its requests (and "
            "the provider's key) to the provider's base URL only: leave the base URL empty, "
            "or choose no provider for a server of your own (no key is sent there)."
        )
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
        provider=endpoint.provider.name if endpoint.provider else "",
    )
    return endpoint


@transaction.atomic
def endpoint_delete(*, endpoint: JudgeEndpoint, actor: User | AnonymousUser | None) -> None:
    audit(project=endpoint.project, actor=actor, action="endpoint.delete", target=str(endpoint.pk))
    endpoint.delete()


def endpoint_test(*, endpoint: JudgeEndpoint) -> str:
    """Ask the endpoint for its models: a short message saying what was found. A local
    model is looked for on this machine's disk (the GPU workers load it)."""
    if endpoint.backend == JudgeEndpoint.Backend.LOCAL:
        return _local_test(endpoint)

    async def probe(gateway: Gateway) -> list[str]:
        async with gateway:
            return await gateway.list_models()

    try:
        # The gateway reads the provider from the database: made outside the event loop.
        # The network policy is checked on the connection it opens.
        models = asyncio.run(probe(gateway_for(endpoint)))
    except GatewayError as exc:  # a status and fixed words, never the server's body
        raise ApplicationError(f"“{endpoint.name}” did not answer: {exc.message}") from None
    if endpoint.model not in models:
        listed = ", ".join(m[:100] for m in models[:10]) or "none"
        return f"Connected, but the model “{endpoint.model}” is not listed (models: {listed})."
    listed = "1 model listed" if len(models) == 1 else f"{len(models)} models listed"
    return f"Connected: “{endpoint.model}” is available ({listed})."


def _local_test(endpoint: JudgeEndpoint) -> str:
    # Checked again now, not only when saved: LOCAL_MODEL_DIRS may have changed, or a link
    # under an allowed root may have been swapped to lead elsewhere since.
    directory = allowed_model_dir(endpoint.model_path)
    if directory is None:
        raise ApplicationError(
            f"“{endpoint.model_path}” is not an absolute directory under LOCAL_MODEL_DIRS "
            "(now): it is not read."
        )
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


def provider_problems(provider: LLMProvider) -> list[str]:
    """What keeps ``provider`` from being saved, in words for the site admin."""
    problems = []
    if not provider.name.strip():
        problems.append("A provider needs a name.")
    problem = base_url_problem(provider.base_url) if provider.base_url else "A base URL is needed."
    if problem:
        problems.append(problem)
    if provider.api_key_env and not key_variable_allowed(provider.api_key_env):
        problems.append(
            f"“{provider.api_key_env}” is not a variable LLM keys may be read from: use one "
            f"whose name starts with {settings.LLM_KEY_ENV_PREFIX} or one of "
            f"LLM_KEY_ENV_ALLOWED ({', '.join(settings.LLM_KEY_ENV_ALLOWED) or 'none'})."
        )
    for text in (provider.name, provider.base_url, provider.note):
        if "\x00" in text:
            problems.append("A NUL character cannot be stored.")
    return problems


@transaction.atomic
def provider_save(*, provider: LLMProvider) -> LLMProvider:
    """Create or update a provider (site admins only: the caller checked). Its endpoints'
    copy of the base URL follows it, so runs that started on the old one stop with that
    reason rather than mix two servers' verdicts."""
    problems = provider_problems(provider)
    if problems:
        raise ApplicationError(" ".join(problems))
    provider.base_url = provider.base_url.rstrip("/")
    provider.save()
    JudgeEndpoint.objects.filter(provider=provider).exclude(base_url=provider.base_url).update(
        base_url=provider.base_url
    )
    return provider
