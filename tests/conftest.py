"""Personas (owner, editor, reviewer, viewer, outsider) and shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from annotation.projects.models import Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
HEALTHBENCH = SHARED_DATA / "healthbench" / "healthbench_sample_250.jsonl"

# The test client and the live server speak plain http. Production's HTTPS redirect and
# Secure cookies (on whenever DEBUG is off) are turned off for the suite here, before any
# request handler is built; tests/test_security.py checks the production defaults in a
# process of their own.
django_settings.SECURE_SSL_REDIRECT = False
django_settings.SESSION_COOKIE_SECURE = django_settings.CSRF_COOKIE_SECURE = False


@pytest.fixture(autouse=True)
def _no_api_throttling(settings):  # type: ignore[no-untyped-def]
    """API throttles count requests per user id over a minute, and the suite's users reuse
    ids from test to test: throttling is off unless a test turns it on
    (tests/test_security.py)."""
    settings.API_THROTTLE_RATES = {"anon": None, "user": None}


@pytest.fixture(autouse=True)
def _anyone_creates_projects(settings):  # type: ignore[no-untyped-def]
    """Tests set up projects through the service with users of every kind; who may create
    projects (ALLOW_PROJECT_CREATION, "staff" by default) is tested where a test sets it
    (tests/annotation/test_project_creation.py)."""
    settings.ALLOW_PROJECT_CREATION = "all"


@pytest.fixture(autouse=True)
def _fast_hasher(settings):  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def project(db):  # type: ignore[no-untyped-def]
    return ProjectFactory(slug="alpha", name="Alpha")


def _member(project, role):  # type: ignore[no-untyped-def]
    user = UserFactory(username=role)
    MembershipFactory(project=project, user=user, role=role)
    return user


@pytest.fixture
def owner(project):  # type: ignore[no-untyped-def]
    return _member(project, Role.OWNER)


@pytest.fixture
def editor(project):  # type: ignore[no-untyped-def]
    return _member(project, Role.EDITOR)


@pytest.fixture
def reviewer(project):  # type: ignore[no-untyped-def]
    return _member(project, Role.REVIEWER)


@pytest.fixture
def viewer(project):  # type: ignore[no-untyped-def]
    return _member(project, Role.VIEWER)


@pytest.fixture
def outsider(db):  # type: ignore[no-untyped-def]
    other = ProjectFactory(slug="elsewhere")
    user = UserFactory(username="outsider")
    MembershipFactory(project=other, user=user, role=Role.OWNER)
    return user


@pytest.fixture
def personas(owner, editor, reviewer, viewer, outsider):  # type: ignore[no-untyped-def]
    return {
        "owner": owner,
        "editor": editor,
        "reviewer": reviewer,
        "viewer": viewer,
        "outsider": outsider,
    }


@pytest.fixture
def api():  # type: ignore[no-untyped-def]
    return APIClient()


@pytest.fixture
def healthbench_path():  # type: ignore[no-untyped-def]
    if not HEALTHBENCH.is_file():
        pytest.skip(f"{HEALTHBENCH} is absent")
    return HEALTHBENCH


def pytest_terminal_summary(terminalreporter):  # type: ignore[no-untyped-def]
    """Name the database the suite ran on (CI fails if it was not PostgreSQL)."""
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    name = "PostgreSQL" if "postgresql" in engine else "SQLite" if "sqlite" in engine else engine
    terminalreporter.write_line(
        f"database: {name}; broker: {settings.CELERY_BROKER_URL.split(':')[0]}"
    )


@pytest.fixture(scope="session")
def fake_llm_server():  # type: ignore[no-untyped-def]
    """One fake OpenAI-compatible server on loopback for the whole run."""
    from fakellm.config import FakeConfig
    from fakellm.server import FakeLLMServer

    server = FakeLLMServer(FakeConfig())
    server.start_in_thread()
    yield server
    server.stop()


@pytest.fixture
def fake_llm(fake_llm_server, settings, monkeypatch):  # type: ignore[no-untyped-def]
    """The fake server with no faults, no latency, no rules and zeroed statistics. LLM
    requests may reach its loopback address and port, and only that (LLM_PRIVATE_HOSTS, in
    this process and in the worker processes a test starts)."""
    from fakellm.config import FakeConfig

    address = fake_llm_server.url.removeprefix("http://")
    settings.LLM_PRIVATE_HOSTS = [*settings.LLM_PRIVATE_HOSTS, address]
    monkeypatch.setenv("LLM_PRIVATE_HOSTS", ",".join(settings.LLM_PRIVATE_HOSTS))

    defaults = FakeConfig()
    fake_llm_server.configure(
        latency=0.0,
        rate_429=0.0,
        rate_500=0.0,
        rate_timeout=0.0,
        rate_malformed=0.0,
        rules=[],
        logprob_rules=[],
        seed=defaults.seed,
        retry_after=0.01,
        hang_seconds=1.0,
    )
    fake_llm_server.reset()
    yield fake_llm_server


@pytest.fixture(autouse=True)
def _judgments_written_in_the_test_transaction(settings):  # type: ignore[no-untyped-def]
    """In-process runs write judgments on the test's own connection (a writer thread's
    connection could not see the test's uncommitted data); worker processes started by
    tests use the threaded writer, as in production."""
    settings.SCORING_WRITE_THREAD = False


@pytest.fixture(autouse=True)
def _no_cached_llm_results(settings):  # type: ignore[no-untyped-def]
    """Each test starts without cached LLM results (in-process, or in Redis under CI)."""
    from scoring.judges import gateways as llm

    llm._memory_cache.cache_clear()
    if settings.LLM_REDIS_URL:
        client = llm._redis(settings.LLM_REDIS_URL)
        keys = list(client.scan_iter("rubricstudio:llmcache:*", count=1000))
        if keys:
            client.delete(*keys)


# Tiny random Llama-style judges with a small tokenizer, built once per session, saved to a
# temporary directory and loaded through the real loading code (torch is imported only by
# the tests that use them).


def _build(directory, *, chat: bool):  # type: ignore[no-untyped-def]
    tokenizer = _synthetic().build_tokenizer(directory, chat=chat)
    # Larger initial weights than a trained model's spread the probabilities over (0, 1), so
    # an equivalence check compares varied numbers, not values all near ½.
    _synthetic().build_model(directory, vocab_size=len(tokenizer), initializer_range=0.2)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Plain-text prompts (the tokenizer has no chat template)."""
    return _build(tmp_path_factory.mktemp("tiny-judge"), chat=False)


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Prompts through a ChatML chat template, as instruction-tuned judges ship."""
    return _build(tmp_path_factory.mktemp("tiny-chat-judge"), chat=True)


def _synthetic():  # type: ignore[no-untyped-def]
    from scoring.judges.local import synthetic

    return synthetic
