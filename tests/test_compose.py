"""Static checks on the container deployment files (no Docker, no DB needed)."""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

EXPECTED_SERVICES = {"postgres", "redis", "web", "worker", "gpu-worker"}
APP_SERVICES = ("web", "worker", "gpu-worker")
INTERPOLATION = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+]).*)?\}$")


@pytest.fixture(scope="module")
def compose():
    with COMPOSE_FILE.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def _env(service):
    """Normalise a service's environment (mapping or KEY=VALUE list) to a dict."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, value = item.partition("=")
            out[key] = value
        return out
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def _command(service):
    cmd = service.get("command", "")
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def test_compose_spec_has_no_version_key(compose):
    assert "version" not in compose


def test_all_services_present(services):
    assert set(services) >= EXPECTED_SERVICES


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_have_core_environment(services, name):
    env = _env(services[name])
    for key in ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY"):
        assert env.get(key), f"{name} is missing {key}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_healthy_backends(services, name):
    depends = services[name].get("depends_on")
    assert isinstance(depends, dict), f"{name} depends_on must use the long form"
    for backend in ("postgres", "redis"):
        assert backend in depends, f"{name} must depend on {backend}"
        assert depends[backend].get("condition") == "service_healthy"


@pytest.mark.parametrize("name", ["postgres", "redis", "web"])
def test_healthchecks_defined(services, name):
    healthcheck = services[name].get("healthcheck")
    assert healthcheck and healthcheck.get("test"), f"{name} needs a healthcheck"
    assert not healthcheck.get("disable", False)


def test_web_healthcheck_targets_healthz(services):
    test = services["web"]["healthcheck"]["test"]
    text = " ".join(test) if isinstance(test, list) else test
    assert "http://localhost:8000/healthz" in text


def test_worker_consumes_default_queue(services):
    assert "-Q default" in _command(services["worker"])


def test_gpu_worker_consumes_gpu_queue_and_reserves_gpu(services):
    gpu = services["gpu-worker"]
    assert "-Q gpu" in _command(gpu)

    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in (dev.get("capabilities") or []) for dev in devices)

    build = gpu.get("build")
    assert isinstance(build, dict)
    assert str(build.get("args", {}).get("WITH_TORCH")) == "1"


def _dockerfile_cmd():
    text = DOCKERFILE.read_text(encoding="utf-8")
    # Join line continuations, then take the last CMD (the effective one).
    logical = re.sub(r"\\\r?\n", " ", text).splitlines()
    cmd_line = re.compile(r"^\s*CMD\s", re.IGNORECASE)
    cmds = [ln.strip()[3:].strip() for ln in logical if cmd_line.match(ln)]
    assert cmds, "Dockerfile has no CMD"
    raw = cmds[-1]
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = shlex.split(raw)
    return parsed


def test_dockerfile_cmd_runs_wsgi_app():
    assert DOCKERFILE.is_file()
    cmd = _dockerfile_cmd()
    assert "rubricstudio.wsgi:application" in cmd


def test_no_literal_secrets_in_environment(services):
    for name, service in services.items():
        env = _env(service)
        for key, value in env.items():
            assert not re.search(r"\bsk-[A-Za-z0-9_-]{8,}", value), (
                f"{name}.{key} looks like a literal API key"
            )
            if key == "OPENAI_API_KEY" or key.endswith("_API_KEY"):
                assert INTERPOLATION.match(value), (
                    f"{name}.{key} must be a ${{...}} interpolation, got {value!r}"
                )
