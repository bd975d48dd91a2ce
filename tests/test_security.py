"""What sits around authorization: login and API throttling, members by exact username with
e-mail addresses for owners only, secure production defaults and a clean
``check --deploy``, the Content-Security-Policy, responses that echo nothing they were
sent, read-only pages, ``no-store`` on secrets, and exports with judge verdicts kept from
reviewers. (Who may use which URL is tests/test_permission_matrix.py.)"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.projects.models import Membership
from scoring.datasets.models import Export
from scoring.datasets.services import export_directory
from tests.factories import PromptFactory, RubricFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"


def _locmem_throttle_cache(settings) -> None:  # type: ignore[no-untyped-def]
    """A throttle cache of the test's own (a CI run counts in Redis otherwise)."""
    settings.CACHES = {
        **settings.CACHES,
        "throttle": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"throttle-{uuid.uuid4()}",
        },
    }


# --- login throttling -----------------------------------------------------------------------


@pytest.mark.django_db
def test_wrong_passwords_lock_the_login_and_the_right_one_waits_for_the_window(client, settings):
    from axes.models import AccessAttempt

    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    user = UserFactory(username="dr-ada")  # password "pw"
    UserFactory(username="dr-bob")
    wrong = {"username": "dr-ada", "password": "not-it"}
    right = {"username": "dr-ada", "password": "pw"}

    assert client.post("/login/", wrong).status_code == 200  # the form, with its error
    assert client.post("/login/", wrong).status_code == 200
    locked = client.post("/login/", wrong)
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content

    # The right password during the lockout is refused too (and restarts the wait).
    refused = client.post("/login/", right)
    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session
    # The lock is on this username from this address, not on everyone.
    other = Client()
    assert other.post("/login/", {"username": "dr-bob", "password": "pw"}).status_code == 302

    # Wait on the recorded state: the window counts from the last attempt the database has.
    cooloff = settings.AXES_COOLOFF_TIME
    deadline = time.monotonic() + 60
    attempt = AccessAttempt.objects.get(username="dr-ada")
    while timezone.now() <= attempt.attempt_time + cooloff:
        assert time.monotonic() < deadline, "the lockout window never passed"
        time.sleep(0.05)
        attempt.refresh_from_db()
    accepted = client.post("/login/", right)
    assert accepted.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_api_requests_over_the_rate_get_429_until_the_window_passes(
    api, project, viewer, editor, settings, monkeypatch
):
    from rubricstudio.security import UserThrottle

    _locmem_throttle_cache(settings)
    settings.API_THROTTLE_RATES = {"anon": "2/minute", "user": "3/minute"}
    now = [1_000_000.0]
    monkeypatch.setattr(UserThrottle, "timer", lambda self: now[0])
    url = f"/api/projects/{project.slug}/prompts/"
    api.force_authenticate(viewer)
    codes = [api.get(url).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    throttled = api.get(url)
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    api.force_authenticate(editor)  # counted per user
    assert api.get(url).status_code == 200
    api.force_authenticate(viewer)
    now[0] += 61  # the window (a minute) passes
    assert api.get(url).status_code == 200

    anonymous = Client()
    assert [anonymous.get("/api/schema/").status_code for _ in range(3)] == [200, 200, 429]


def test_the_throttle_cache_is_redis_when_the_deployment_has_one():
    """All web processes count together where there is Redis; the embedded default counts
    in files under var/ (shared by the processes of one machine)."""
    show = "from django.conf import settings; print(settings.CACHES['throttle']['BACKEND'])"
    with_redis = _settings(show, DEBUG="1", CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    assert with_redis.strip() == "django.core.cache.backends.redis.RedisCache"
    embedded = _settings(show, DEBUG="1", CELERY_BROKER_URL="filesystem://")
    assert embedded.strip() == "django.core.cache.backends.filebased.FileBasedCache"


# --- members --------------------------------------------------------------------------------


def test_members_are_added_by_exact_username_only(client, project, owner):
    UserFactory(username="dr-ng", email="ng@example.org")
    client.force_login(owner)
    url = reverse("annotation:members", args=[project.slug])
    for guess in ("ng@example.org", "DR-NG", " dr-n"):
        page = client.post(url, {"username": guess, "role": "viewer"}, follow=True)
        assert b"No user with the username" in page.content
    assert not Membership.objects.filter(project=project, user__username="dr-ng").exists()
    assert client.post(url, {"username": "dr-ng", "role": "viewer"}).status_code == 302
    assert Membership.objects.filter(project=project, user__username="dr-ng").exists()


def test_only_owners_see_members_email_addresses(client, api, project, owner, viewer, editor):
    members = f"/api/projects/{project.slug}/members/"
    page = reverse("annotation:members", args=[project.slug])
    for user in (viewer, editor):
        client.force_login(user)
        assert b"@example.com" not in client.get(page).content
        api.force_authenticate(user)
        rows = api.get(members).json()["results"]
        assert rows and all("email" not in row for row in rows)
        assert "email" not in api.get(f"{members}{rows[0]['id']}/").json()
    client.force_login(owner)
    assert b"viewer@example.com" in client.get(page).content
    api.force_authenticate(owner)
    rows = api.get(members).json()["results"]
    assert {row["email"] for row in rows} >= {"viewer@example.com", "editor@example.com"}


def test_the_members_api_refuses_an_email_address(api, project, owner):
    UserFactory(username="dr-kim", email="kim@example.org")
    api.force_authenticate(owner)
    members = f"/api/projects/{project.slug}/members/"
    refused = api.post(members, {"username": "kim@example.org", "role": "viewer"})
    assert refused.status_code == 400 and "No user" in refused.json()["detail"]
    old_field = api.post(members, {"identifier": "dr-kim", "role": "viewer"})
    assert old_field.status_code == 400 and "username" in old_field.json()
    assert not Membership.objects.filter(project=project, user__username="dr-kim").exists()


# --- secure production defaults -------------------------------------------------------------


def _settings(code: str, **env: str) -> str:
    """Run ``code`` after loading the settings in a process with exactly this environment
    (on top of PATH), so the defaults are the ones production gets."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "rubricstudio.settings",
    }
    environment["RUBRICSTUDIO_VAR_DIR"] = os.environ.get("RUBRICSTUDIO_VAR_DIR", str(ROOT / "var"))
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


SHOW_SECURE = (
    "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, "
    "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
    "s.SECURE_REDIRECT_EXEMPT)"
)


def test_https_settings_are_on_by_default_in_production_and_off_in_development():
    key = secrets.token_urlsafe(50)
    production = _settings(SHOW_SECURE, DEBUG="0", SECRET_KEY=key).split(maxsplit=4)
    assert production[:3] == ["True", "True", "True"]
    assert int(production[3]) >= 31536000
    assert "healthz" in production[4]
    development = _settings(SHOW_SECURE, DEBUG="1").split(maxsplit=4)
    assert development[:4] == ["False", "False", "False", "0"]
    turned_off = _settings(SHOW_SECURE, DEBUG="0", SECRET_KEY=key, SECURE="0").split(maxsplit=4)
    assert turned_off[:4] == ["False", "False", "False", "0"]


@pytest.mark.django_db
def test_production_redirects_to_https_but_healthz_answers_over_http(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31536000
    client = Client()  # built after the settings: its middleware reads them
    plain = client.get("/login/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    assert client.get("/healthz").status_code in (200, 503)  # no redirect for health checks
    secure = client.get("/login/", secure=True)
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")
    assert secure.cookies["csrftoken"]["secure"]


def _compose_environment() -> dict[str, str]:
    """docker-compose.yml's documented environment for the app services, with its
    ${VAR:-default} interpolations resolved and a strong SECRET_KEY supplied."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    given = {"SECRET_KEY": secrets.token_urlsafe(50), "POSTGRES_PASSWORD": "not-the-default"}

    def resolve(value: str) -> str:
        def one(match: re.Match[str]) -> str:
            name, op, default = match.group(1), match.group(2) or "", match.group(3) or ""
            if name in given:
                return given[name]
            assert op != ":?", f"docker-compose.yml requires {name}"
            return default

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", one, value)

    env = compose["services"]["web"]["environment"]
    return {name: resolve(str(value)) for name, value in env.items()}


def test_the_documented_production_environment_passes_check_deploy():
    env = _compose_environment()
    assert env["DEBUG"] == "0" and env["SECRET_KEY"]
    environment = {"PATH": os.environ.get("PATH", ""), **env}
    environment["RUBRICSTUDIO_VAR_DIR"] = os.environ.get("RUBRICSTUDIO_VAR_DIR", str(ROOT / "var"))
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "System check identified no issues" in result.stdout


# --- the Content-Security-Policy ------------------------------------------------------------


def test_templates_have_no_inline_script_handler_style_or_eval():
    """What the policy forbids, found in the templates themselves (the browser test visits
    the pages with a violation listener: tests/browser/test_csp.py)."""
    problems = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(ROOT)
        for tag in re.findall(r"<script\b[^>]*>", text, flags=re.I):
            if "src=" not in tag:
                problems.append(f"{name}: inline {tag}")
        for found in re.findall(r"\son[a-z]+\s*=", text, flags=re.I):
            problems.append(f"{name}: event handler attribute {found.strip()}")
        for pattern, what in [
            (r"\sstyle\s*=", "style attribute"),
            (r"<style\b", "<style> element"),
            (r"\shx-on[:-]", "hx-on (needs eval)"),
            (r"\shx-vars\s*=", "hx-vars (needs eval)"),
            (r"\shx-vals\s*=\s*['\"]\s*(js|javascript):", "hx-vals with js: (needs eval)"),
            (r"javascript:", "javascript: URL"),
        ]:
            if re.search(pattern, text, flags=re.I):
                problems.append(f"{name}: {what}")
    assert not problems, "\n".join(problems)


def test_pages_send_the_policy_and_htmx_runs_without_eval(client, project, viewer):
    client.force_login(viewer)
    response = client.get(reverse("annotation:project_detail", args=[project.slug]))
    policy = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in response["Content-Security-Policy"]
    html = response.content.decode()
    assert re.search(r'<meta name="htmx-config" content=\'\{"allowEval": false', html)


# --- every response escaped -----------------------------------------------------------------


def test_bad_request_bodies_echo_nothing_they_were_sent(client, project, editor):
    client.force_login(editor)
    prompt = PromptFactory(project=project)
    rubric = RubricFactory(project=project, prompt=prompt)
    payload = "<script>alert(1)</script>"
    workflow = client.post(
        reverse("annotation:rubric_workflow", args=[project.slug, rubric.pk]),
        {"action": payload},
    )
    start = client.post(
        reverse("annotation:prompt_rubric_start", args=[project.slug, prompt.pk]),
        {"op": payload},
    )
    draft = client.post(
        reverse("annotation:rubric_draft", args=[project.slug, rubric.pk, "nope-op"])
    )
    for response in (workflow, start, draft):
        assert response.status_code == 400
        assert response["Content-Type"].startswith("text/plain")
        assert b"<script>" not in response.content and b"nope-op" not in response.content
        assert b"Unknown" in response.content


def test_api_docs_answer_options_and_other_methods_without_a_server_error(client, viewer):
    assert client.options("/api/docs/").status_code == 405
    client.force_login(viewer)
    assert client.options("/api/docs/").status_code == 405
    assert client.post("/api/docs/").status_code == 405
    assert client.options("/api/schema/").status_code == 405
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts)
    assert "<style" not in html
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_the_account_page_is_never_stored(client, viewer):
    client.force_login(viewer)
    response = client.get(reverse("annotation:account"))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_read_only_pages_answer_only_get_and_head(client, project, viewer):
    client.force_login(viewer)
    rubric = RubricFactory(project=project)
    for url in (
        reverse("annotation:project_detail", args=[project.slug]),
        reverse("annotation:rubric_history", args=[project.slug, rubric.pk]),
        reverse("annotation:rubric_diff", args=[project.slug, rubric.pk]),
    ):
        assert client.get(url).status_code == 200, url
        assert client.head(url).status_code == 200, url
        for method in ("post", "put", "patch", "delete"):
            assert getattr(client, method)(url).status_code == 405, (method, url)


# --- exports with judge verdicts ------------------------------------------------------------


def _export(project, owner, kind: str, **options):  # type: ignore[no-untyped-def]
    body = b'{"row": 1}\n'
    export = Export.objects.create(
        project=project,
        created_by=owner,
        kind=kind,
        format="jsonl",
        options={"kind": kind, **options},
        status=Export.Status.DONE,
        rows_total=1,
        files=[
            {
                "name": "train.jsonl",
                "rows": 1,
                "bytes": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
            }
        ],
    )
    directory = export_directory(export.pk)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "train.jsonl").write_bytes(body)
    return export


@pytest.fixture
def exports(project, owner, settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = str(tmp_path)
    return {
        "judge_sft": _export(project, owner, "judge_sft"),
        "pairwise_sft": _export(project, owner, "pairwise_sft"),
        "judge_pairs": _export(project, owner, "preferences", origins=["expert", "judge"]),
        "expert_pairs": _export(project, owner, "preferences", origins=["dataset", "expert"]),
        "rl_verl": _export(project, owner, "rl_verl"),
    }


JUDGED = ("judge_sft", "pairwise_sft", "judge_pairs")


def test_exports_with_judge_verdicts_are_for_editors_and_owners(
    client, api, project, exports, viewer, reviewer, editor, owner
):
    def page_url(export):  # type: ignore[no-untyped-def]
        return reverse("scoring:export_file", args=[project.slug, export.pk, "train.jsonl"])

    def api_url(export):  # type: ignore[no-untyped-def]
        return f"/api/projects/{project.slug}/exports/{export.pk}/files/train.jsonl"

    for user in (viewer, reviewer):
        client.force_login(user)
        api.force_authenticate(user)
        for name, export in exports.items():
            expected = 403 if name in JUDGED else 200
            assert client.get(page_url(export)).status_code == expected, (user, name)
            assert api.get(api_url(export)).status_code == expected, (user, name)
        listing = client.get(reverse("scoring:exports", args=[project.slug])).content.decode()
        for name, export in exports.items():  # every export is listed …
            assert f'id="export-{export.pk}"' in listing
            linked = page_url(export) in listing  # … and linked only where downloadable
            assert linked == (name not in JUDGED), (user, name)
    for user in (editor, owner):
        client.force_login(user)
        api.force_authenticate(user)
        for export in exports.values():
            response = client.get(page_url(export))
            assert response.status_code == 200
            assert b"".join(response.streaming_content) == b'{"row": 1}\n'
            assert api.get(api_url(export)).status_code == 200
