"""The site's LLM keys and network, from the web process and the workers' code paths (Test
connection, co-authoring jobs, scoring runs), against listeners on loopback:

* a key belongs to a provider the site admin set up and goes to its base URL only: an owner
  can neither name a key variable nor point a provider's endpoint elsewhere, and an
  endpoint without a provider sends no key (the listener records everything it gets);
* no internal address is reached unless LLM_PRIVATE_HOSTS names it, whether it is written
  as an address (refused when saved), a name resolving to loopback, or a redirect's target;
* failure reasons carry a status and fixed words, never what the server answered, and say
  the same for an open and a closed internal port;
* Test connection of a local endpoint checks its directory again (a link swapped since);
* providers are for superusers only, and existing endpoints' key variables moved onto them.
"""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from annotation.projects import services as project_services
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.coauthoring import services as coauthor_services
from scoring.coauthoring.models import Proposal
from scoring.judges import services as judge_services
from scoring.judges.models import JudgeEndpoint, LLMProvider
from scoring.judges.services import provider_save
from scoring.runs import services as run_services
from scoring.runs.models import Judgment, Run
from tests.factories import ProjectFactory, PromptFactory, ResponseFactory, UserFactory
from tests.scoring.listener import Listener, Reply, closed_port

CANARY_VAR = "RUBRICSTUDIO_LLM_KEY_CANARY"
CANARY = "sk-site-canary-4c2d9e71b0"
HX = {"HTTP_HX_REQUEST": "true"}
FORM = {"form": "endpoint", "model": "listener", "temperature": "0", "max_tokens": "64", "timeout": "5", "max_concurrency": "2", "price_input_per_m": "0", "price_output_per_m": "0"}  # fmt: skip


@pytest.fixture
def canary(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv(CANARY_VAR, CANARY)
    return CANARY


@pytest.fixture
def site_provider(db, canary):  # type: ignore[no-untyped-def]
    """The site's hosted provider; never reached by these tests."""
    return provider_save(
        provider=LLMProvider(
            name="Hosted", base_url="https://api.hosted.example/v1", api_key_env=CANARY_VAR
        )
    )


@pytest.fixture
def prompt(project, editor):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(project=project, messages=[{"role": "user", "content": "Dose?"}])
    ResponseFactory(prompt=prompt, source="model-a", content="Take 5 mg.")
    rubric_services.rubric_create(
        project=project,
        prompt=prompt,
        title="Dose",
        author=editor,
        criteria=[CriterionInput(text="Gives the dose", points=5)],
    )
    return prompt


def allow(settings, *listeners: Listener) -> None:  # type: ignore[no-untyped-def]
    settings.LLM_PRIVATE_HOSTS = [listener.address for listener in listeners]


def test_connection(client: Client, endpoint: JudgeEndpoint) -> str:
    url = reverse("scoring:endpoint_test", args=[endpoint.project.slug, endpoint.pk])
    response = client.post(url, **HX)
    assert response.status_code == 200
    return response.content.decode()


test_connection.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def use_everywhere(client, project, prompt, owner, editor, endpoint, eager):  # type: ignore[no-untyped-def]
    """Test connection, a co-authoring job and a scoring run with ``endpoint``; the texts
    they show: [Test connection, the job's failure reasons, the run's, the pages]."""
    client.force_login(owner)
    texts = [test_connection(client, endpoint)]
    job = eager(
        lambda: coauthor_services.job_start(
            project=project, actor=editor, kind="critique", prompt=prompt, endpoint_id=endpoint.pk
        )
    )
    run = eager(
        lambda: run_services.run_create(
            project=project, actor=editor, endpoint=endpoint, mode=Run.Mode.PER_CRITERION
        )
    )
    job.refresh_from_db()
    run.refresh_from_db()
    reasons = [job.error, *Proposal.objects.filter(job=job).values_list("error", flat=True)]
    texts.append(" ".join(reasons))
    texts.append(" ".join([run.note, *Judgment.objects.values_list("error", flat=True)]))
    texts.append(client.get(reverse("scoring:job", args=[project.slug, job.pk])).content.decode())
    texts.append(client.get(reverse("scoring:run", args=[project.slug, run.pk])).content.decode())
    return texts


def test_an_owner_cannot_send_a_site_key_anywhere(
    client, api, settings, project, prompt, owner, editor, site_provider, eager
):
    with Listener() as theirs:
        allow(settings, theirs)  # the owner's server is reachable: only the key is at stake
        api.force_login(owner)
        endpoints = f"/api/projects/{project.slug}/endpoints/"
        own = {"name": "mine", "base_url": theirs.url + "/v1", "model": "listener"}
        # Naming the site's key variable, with their own URL or none.
        for data in (
            {**own, "api_key_env": CANARY_VAR},
            {"name": "k", "model": "m", "provider": site_provider.pk, "api_key_env": CANARY_VAR},
        ):
            response = api.post(endpoints, data, format="json")
            assert response.status_code == 400 and "do not name an API key" in str(response.json())
        # The site's provider with their URL.
        response = api.post(endpoints, {**own, "provider": site_provider.pk}, format="json")
        assert response.status_code == 400 and "base URL only" in response.json()["detail"]
        assert not JudgeEndpoint.objects.exists()
        # On the provider, then moved to their URL: refused, and nothing changes.
        made = api.post(
            endpoints, {"name": "hosted", "model": "m", "provider": site_provider.pk}, format="json"
        )
        assert made.status_code == 201 and made.json()["base_url"] == site_provider.base_url
        assert made.json()["key_variable"] == CANARY_VAR and CANARY not in str(made.json())
        detail = f"{endpoints}{made.json()['id']}/"
        for patch in ({"base_url": own["base_url"]}, {"api_key_env": "OPENAI_API_KEY"}):
            assert api.patch(detail, patch, format="json").status_code == 400
        hosted = JudgeEndpoint.objects.get(name="hosted")
        assert (hosted.provider, hosted.base_url) == (site_provider, site_provider.base_url)
        # The same through the Judges page.
        client.force_login(owner)
        page = reverse("scoring:judges", args=[project.slug])
        html = client.post(
            page, {**FORM, "name": "p", "provider": site_provider.pk, "base_url": theirs.url}
        )
        assert "base URL only" in html.content.decode()
        html = client.post(page, {**FORM, "name": "p", "base_url": theirs.url, "api_key_env": CANARY_VAR})  # fmt: skip
        assert "do not name an API key" in html.content.decode()
        assert JudgeEndpoint.objects.count() == 1
        # The pages show the provider and its variable's name, and edit it in place.
        listing = client.get(page).content.decode()
        assert f'Hosted · <span class="mono">{CANARY_VAR}</span>' in listing
        edit = reverse("scoring:endpoint_edit", args=[project.slug, hosted.pk])
        form = client.get(edit).content.decode()
        assert f'<option value="{site_provider.pk}" selected>' in form
        assert 'name="base_url" maxlength="500" value=""' in form and CANARY not in form
        saved = client.post(edit, {**FORM, "name": "hosted", "provider": site_provider.pk, "base_url": "", "temperature": "0.5"})  # fmt: skip
        assert saved.status_code == 302
        hosted.refresh_from_db()
        assert (hosted.temperature, hosted.base_url) == (0.5, site_provider.base_url)
        # Their own endpoint (no provider) is used everywhere: it carries no key.
        mine = judge_services.endpoint_save(project=project, actor=owner, data=own)
        texts = use_everywhere(client, project, prompt, owner, editor, mine, eager)
        received = theirs.received()
        assert b"POST /v1/chat/completions" in received and b"GET /v1/models" in received
        assert CANARY.encode() not in received
        assert all(CANARY not in text for text in texts)


def test_a_providers_key_reaches_its_own_url(client, settings, project, prompt, owner, editor, canary, eager):  # fmt: skip
    """The control: the listener does see a key where the site admin sends it."""
    with Listener() as provider_server:
        allow(settings, provider_server)
        provider = provider_save(
            provider=LLMProvider(
                name="LAN vLLM", base_url=provider_server.url + "/v1", api_key_env=CANARY_VAR
            )
        )
        endpoint = judge_services.endpoint_save(
            project=project,
            actor=owner,
            data={"name": "lan", "provider": provider.pk, "model": "m"},
        )
        texts = use_everywhere(client, project, prompt, owner, editor, endpoint, eager)
        assert f"Bearer {CANARY}".encode() in provider_server.received()
        assert all(CANARY not in text for text in texts)


def test_a_disabled_or_withheld_provider_sends_nothing(project, owner, site_provider, eager):
    endpoint = judge_services.endpoint_save(
        project=project, actor=owner, data={"name": "h", "provider": site_provider.pk, "model": "m"}
    )
    LLMProvider.objects.filter(pk=site_provider.pk).update(enabled=False)
    with pytest.raises(Exception, match="disabled by the site admin"):
        judge_services.endpoint_test(endpoint=JudgeEndpoint.objects.get(pk=endpoint.pk))
    LLMProvider.objects.filter(pk=site_provider.pk).update(enabled=True)
    other = project_services.project_create(name="Other", slug="other", owner=owner)
    site_provider.projects.set([other])
    with pytest.raises(Exception, match="not available to this project"):
        judge_services.endpoint_test(endpoint=JudgeEndpoint.objects.get(pk=endpoint.pk))
    with pytest.raises(Exception, match="providers the site admin made available"):
        judge_services.endpoint_save(
            project=project,
            actor=owner,
            data={"name": "x", "provider": site_provider.pk, "model": "m"},
        )


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "2130706433", "0x7f.0.0.1", "127.1", "[::ffff:127.0.0.1]", "[::1]", "10.0.0.8", "169.254.169.254"]
)  # fmt: skip
def test_an_internal_address_is_refused_when_saved(project, owner, host):
    with pytest.raises(Exception, match="internal address|not a valid URL"):
        judge_services.endpoint_save(
            project=project,
            actor=owner,
            data={"name": "x", "base_url": f"http://{host}:6379/v1", "model": "m"},
        )
    with pytest.raises(Exception, match="internal address|not a valid URL"):
        provider_save(provider=LLMProvider(name="p", base_url=f"http://{host}:6379/v1"))
    assert not JudgeEndpoint.objects.exists() and not LLMProvider.objects.exists()


def test_no_private_address_is_reached_unless_allowlisted(
    client, settings, project, prompt, owner, editor, eager
):
    settings.LLM_PRIVATE_HOSTS = []
    with Listener() as internal:
        # A name that resolves to loopback passes the save (names are checked when used).
        endpoint = judge_services.endpoint_save(
            project=project,
            actor=owner,
            data={"name": "x", "base_url": f"http://localhost:{internal.port}/v1", "model": "m"},
        )
        texts = use_everywhere(client, project, prompt, owner, editor, endpoint, eager)
        assert internal.connections == 0
        assert "address is not allowed" in texts[0]  # Test connection
        assert "address is not allowed" in texts[1]  # the co-authoring job's reason
        assert "address is not allowed" in texts[2]  # the run's
        assert Run.objects.get().status == "failed"
        # Named in the allowlist (address and port), the same endpoint reaches it.
        allow(settings, internal)
        assert "Connected" in test_connection(client, endpoint)
        assert internal.connections == 1


def test_a_redirect_from_an_allowed_server_is_not_followed(client, settings, project, owner, editor, prompt, eager):  # fmt: skip
    with Listener() as inside:
        moved = Reply(302, b"", {"Location": f"{inside.url}/v1/models"})
        with Listener({"/models": moved, "/chat/completions": moved}) as allowed:
            allow(settings, allowed)
            endpoint = judge_services.endpoint_save(
                project=project,
                actor=owner,
                data={"name": "x", "base_url": allowed.url + "/v1", "model": "m"},
            )
            texts = use_everywhere(client, project, prompt, owner, editor, endpoint, eager)
            assert allowed.connections >= 1 and inside.connections == 0
            assert "redirect" in texts[0] and inside.url not in texts[0]


def test_failure_reasons_never_echo_what_the_server_answered(
    client, settings, project, prompt, owner, editor, eager
):
    page = b"<h1>INTERNAL-PAGE-7d1f</h1><p>redis_version:7.2.4 requirepass=hunter2</p>"
    replies = {"/models": Reply(404, page), "/chat/completions": Reply(404, page)}
    with Listener(replies) as internal:
        allow(settings, internal)
        endpoint = judge_services.endpoint_save(
            project=project,
            actor=owner,
            data={"name": "x", "base_url": internal.url + "/v1", "model": "m"},
        )
        texts = use_everywhere(client, project, prompt, owner, editor, endpoint, eager)
        assert internal.connections >= 3
        assert all("HTTP 404" in texts[i] for i in (0, 1, 2))
        assert all("INTERNAL-PAGE" not in t and "hunter2" not in t for t in texts)


def test_open_and_closed_internal_ports_say_the_same(client, settings, project, owner):
    settings.LLM_PRIVATE_HOSTS = []
    client.force_login(owner)
    with Listener() as listening:
        said = set()
        for port in (listening.port, closed_port()):
            endpoint = judge_services.endpoint_save(
                project=project,
                actor=owner,
                data={"name": f"p{port}", "base_url": f"http://localhost:{port}/v1", "model": "m"},
            )
            said.add(test_connection(client, endpoint).replace(endpoint.name, "NAME"))
        assert len(said) == 1 and "address is not allowed" in said.pop()
        assert listening.connections == 0


def test_a_local_endpoint_is_checked_again_when_tested(client, settings, project, owner, tmp_path):
    root, outside = tmp_path / "models", tmp_path / "outside"
    for directory in (root / "judge", outside):
        directory.mkdir(parents=True)
        (directory / "config.json").write_text("{}")
        (directory / "model.safetensors").write_bytes(b"")
    settings.LOCAL_MODEL_DIRS = [str(root)]
    endpoint = judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={"name": "local", "backend": "local", "model_path": str(root / "judge")},
    )
    client.force_login(owner)
    assert "Found the model" in test_connection(client, endpoint)
    # After saving, the directory becomes a link out of LOCAL_MODEL_DIRS.
    (root / "judge" / "config.json").unlink()
    (root / "judge" / "model.safetensors").unlink()
    (root / "judge").rmdir()
    os.symlink(outside, root / "judge")
    html = test_connection(client, endpoint)
    assert (
        "Found the model" not in html and "not an absolute directory under LOCAL_MODEL_DIRS" in html
    )
    # And a changed LOCAL_MODEL_DIRS is applied at test time too.
    (root / "judge").unlink()
    (root / "judge").mkdir()
    settings.LOCAL_MODEL_DIRS = [str(outside)]
    assert "not an absolute directory under LOCAL_MODEL_DIRS" in test_connection(client, endpoint)


def test_providers_are_for_superusers_only(client, settings, project, owner, canary):
    url = reverse("admin:scoring_llmprovider_changelist")
    add = reverse("admin:scoring_llmprovider_add")
    staff = UserFactory(username="staff", is_staff=True)
    staff.user_permissions.set(  # every model permission: still not enough
        Permission.objects.filter(
            content_type__app_label="scoring", codename__endswith="llmprovider"
        )
    )
    client.force_login(staff)
    assert client.get(url).status_code == 403
    assert client.post(add, {"name": "x", "base_url": "https://x.test/v1"}).status_code == 403
    client.force_login(owner)  # not staff at all: the admin's login page
    assert client.get(url).status_code == 302
    assert not LLMProvider.objects.exists()
    admin = get_user_model().objects.create_superuser("root", "root@example.test", "pw-root-1")
    client.force_login(admin)
    assert client.get(url).status_code == 200
    form = client.get(add).context["adminform"].form  # a new one starts on the site's URL
    assert form.initial["base_url"] == settings.OPENAI_BASE_URL
    assert form.initial["api_key_env"] == "OPENAI_API_KEY"
    bad = client.post(
        add, {"name": "x", "base_url": "https://x.test/v1", "api_key_env": "SECRET_KEY"}
    )
    assert b"not a variable LLM keys may be read from" in bad.content
    bad = client.post(add, {"name": "x", "base_url": "http://10.1.2.3:8000/v1"})
    assert b"LLM_PRIVATE_HOSTS" in bad.content
    assert not LLMProvider.objects.exists()
    good = {"name": "Hosted", "base_url": "https://api.hosted.example/v1/", "api_key_env": CANARY_VAR, "enabled": "on"}  # fmt: skip
    assert client.post(add, good).status_code == 302
    provider = LLMProvider.objects.get()
    assert provider.base_url == "https://api.hosted.example/v1"
    endpoint = judge_services.endpoint_save(
        project=project, actor=owner, data={"name": "h", "provider": provider.pk, "model": "m"}
    )
    # Moving the provider moves its endpoints (runs started on the old URL stop).
    change = reverse("admin:scoring_llmprovider_change", args=[provider.pk])
    assert (
        client.post(change, {**good, "base_url": "https://eu.hosted.example/v1"}).status_code == 302
    )
    endpoint.refresh_from_db()
    assert endpoint.base_url == "https://eu.hosted.example/v1"
    assert CANARY not in client.get(url).content.decode()


def test_the_demo_endpoint_is_on_a_keyless_provider_that_follows_its_url(settings, db):
    demo = ProjectFactory(slug="demo")
    settings.LLM_PRIVATE_HOSTS = []
    with pytest.raises(CommandError, match="LLM_PRIVATE_HOSTS"):
        call_command("demo_llm_endpoint", url="http://127.0.0.1:8001/v1", stdout=None)
    assert not JudgeEndpoint.objects.exists()
    settings.LLM_PRIVATE_HOSTS = ["127.0.0.1:8001", "127.0.0.1:8002"]
    for port in (8001, 8001, 8002):
        call_command("demo_llm_endpoint", url=f"http://127.0.0.1:{port}/v1", stdout=None)
        endpoints = JudgeEndpoint.objects.select_related("provider").filter(project=demo)
        assert sorted(e.model for e in endpoints) == ["fake-judge", "fake-judge-gullible"]
        for endpoint in endpoints:  # a careful judge and one that obeys hidden instructions
            assert endpoint.provider.name == "Offline fake LLM"
            assert endpoint.provider.api_key_env == ""
            assert endpoint.base_url == endpoint.provider.base_url == f"http://127.0.0.1:{port}/v1"
    assert LLMProvider.objects.count() == 1
