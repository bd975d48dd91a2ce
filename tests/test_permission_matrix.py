"""The permission matrix, generated from Django's URL resolver.

Every URL pattern of the site × method (GET, POST, PUT, PATCH, DELETE, OPTIONS) × persona
(anonymous, outsider, viewer, reviewer, editor, owner, superuser) is requested with real
object ids of project A, and again with project B's ids under project A's slug. What each
cell must answer comes from one rule table, ``RULES``, keyed by URL name: the least role
each method needs. A URL name without a rule fails the build, and so does a rule for a URL
that no longer exists.

The rule, as the code applies it:

- anonymous: pages redirect to the login page, the API answers 401, for every method;
- a method the URL does not serve: 405 for everyone signed in;
- an outsider (a member of project B only): 404, whatever the URL names in project A;
- a member below the method's role: 403 (the reviewing pages also answer 404 for a slot
  that another reviewer holds: a slot exists only for its reviewer);
- anyone at or above the role (superusers act as owners): an answer of the view itself
  (200, 201, 204, a redirect that is not to the login page, or 400/409 for the empty body
  the matrix sends), never 401/403/404/405 and never a server error;
- project B's ids under project A's slug: 404 for everyone allowed in A (or 400 when a
  write is refused for its empty body before any lookup), 403 for members below the role.
  (404 too where the role depends on the object, which is then looked up first).
  The API's OPTIONS describes the URL (its methods and fields), not an object, and reads
  none: it answers members as for A's own ids.

Django's admin is one rule: staff only (anyone else is sent to the admin's login page).

Every request runs in a savepoint that is rolled back, so a DELETE or a logout in one cell
changes nothing for the next; tasks queued "on commit" are never sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RoutePattern

from annotation.projects.models import Membership, Project, Role
from annotation.projects.selectors import role_at_least
from annotation.prompts.models import ImportJob, PreferenceLabel
from annotation.reviews import queues as queue_services
from annotation.reviews import services as review_services
from annotation.rubrics import comments as rubric_comments
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.coauthoring.models import CoauthorJob, Proposal
from scoring.datasets.models import Export
from scoring.datasets.services import export_directory
from scoring.insights.models import RunInsights
from scoring.judges.models import JudgeEndpoint
from scoring.probes.models import Probe
from scoring.runs import services as run_services
from scoring.runs.models import Run
from tests.factories import MembershipFactory, PromptFactory, ResponseFactory, UserFactory

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
PERSONAS = ("anonymous", "outsider", "viewer", "reviewer", "editor", "owner", "superuser")

PUBLIC = "public"  # anyone, signed in or not
SIGNED_IN = "signed-in"  # any signed-in user (nothing project-scoped)
STAFF = "staff"  # staff users (creating projects, under ALLOW_PROJECT_CREATION=staff)
VIEWER, REVIEWER, EDITOR, OWNER = Role.VIEWER, Role.REVIEWER, Role.EDITOR, Role.OWNER


@dataclass(frozen=True)
class Rule:
    """``kind``: ``page`` (anonymous → login page), ``api`` (anonymous → 401) or
    ``public`` (no sign-in at all). ``methods``: method → PUBLIC, SIGNED_IN or the least
    role in the URL's project; a method not named is answered 405. ``ids``: which fixture
    object a URL keyword names where its name alone does not say (``pk``, ``job_id``).
    ``holder_only``: the reviewing pages, where a slot exists only for its reviewer."""

    kind: str
    methods: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)
    holder_only: bool = False


def page(holder_only: bool = False, ids: dict[str, str] | None = None, **methods: str) -> Rule:
    return Rule("page", methods, ids or {}, holder_only)


def api(pk: str = "", **methods: str) -> Rule:
    return Rule("api", methods, {"pk": pk} if pk else {})


def public(**methods: str) -> Rule:
    return Rule("public", methods)


RULES: dict[str, Rule] = {
    # --- the site
    "healthz": public(GET=PUBLIC),
    "login": public(GET=PUBLIC, POST=PUBLIC, PUT=PUBLIC, OPTIONS=PUBLIC),  # PUT: as POST
    "logout": public(POST=PUBLIC, OPTIONS=PUBLIC),
    # an owner's one-time set-password link for an account they made (a wrong token here)
    "set_password": public(GET=PUBLIC, POST=PUBLIC),
    "api-schema": public(GET=PUBLIC),
    "api-docs": public(GET=PUBLIC),
    # --- annotation pages
    "annotation:project_list": page(GET=SIGNED_IN, POST=STAFF),
    "annotation:account": page(GET=SIGNED_IN, POST=SIGNED_IN),
    "annotation:project_detail": page(GET=VIEWER),
    "annotation:prompt_detail": page(GET=VIEWER),
    "annotation:prompt_rubric_start": page(POST=EDITOR),
    "annotation:import": page(GET=EDITOR, POST=EDITOR),
    "annotation:import_job": page(GET=EDITOR, ids={"job_id": "import_job"}),
    "annotation:import_template": page(GET=EDITOR),
    "annotation:project_rubric_create": page(POST=EDITOR),
    "annotation:rubric_page": page(GET=VIEWER),
    "annotation:rubric_editor": page(GET=VIEWER),
    "annotation:rubric_draft": page(POST=EDITOR),
    "annotation:rubric_save": page(POST=EDITOR),
    "annotation:rubric_resolve": page(POST=EDITOR),
    "annotation:rubric_workflow": page(POST=VIEWER),  # the workflow service checks each action
    "annotation:rubric_comment": page(POST=REVIEWER),
    "annotation:rubric_comment_resolve": page(POST=REVIEWER),
    "annotation:rubric_export": page(GET=VIEWER),
    "annotation:rubric_history": page(GET=VIEWER),
    "annotation:rubric_diff": page(GET=VIEWER),
    "annotation:rubric_restore": page(POST=EDITOR),
    "annotation:review_queues": page(GET=VIEWER, POST=EDITOR),
    "annotation:review_mine": page(GET=VIEWER),
    "annotation:review_next": page(GET=REVIEWER),
    "annotation:review_item": page(GET=REVIEWER, holder_only=True),
    "annotation:review_commit": page(POST=REVIEWER, holder_only=True),
    "annotation:review_flag": page(POST=REVIEWER, holder_only=True),
    "annotation:review_undo": page(POST=REVIEWER),
    "annotation:review_adjudicate": page(GET=EDITOR, POST=EDITOR),
    "annotation:members": page(GET=VIEWER, POST=OWNER),
    "annotation:member_update": page(POST=OWNER),
    "annotation:settings": page(GET=VIEWER, POST=OWNER),
    # --- annotation API (OPTIONS answers like a read)
    "api-projects": api(GET=SIGNED_IN, POST=STAFF, OPTIONS=SIGNED_IN),
    "api-project": api(GET=VIEWER, OPTIONS=VIEWER),
    "api-prompts": api(GET=VIEWER, OPTIONS=VIEWER),
    "api-prompt": api(pk="prompt", GET=VIEWER, OPTIONS=VIEWER),
    "api-responses": api(GET=VIEWER, OPTIONS=VIEWER),
    "api-rubrics": api(GET=VIEWER, POST=EDITOR, OPTIONS=VIEWER),
    "api-rubric": api(pk="rubric", GET=VIEWER, OPTIONS=VIEWER),
    "api-rubric-versions": api(pk="rubric", GET=VIEWER, POST=EDITOR, OPTIONS=VIEWER),
    "api-rubric-workflow": api(pk="rubric", POST=VIEWER, OPTIONS=VIEWER),
    "api-rubric-version": api(pk="rubric", GET=VIEWER, OPTIONS=VIEWER),
    "api-rubric-comments": api(pk="rubric", GET=VIEWER, POST=REVIEWER, OPTIONS=VIEWER),
    "api-rubric-comment-resolve": api(pk="rubric", POST=REVIEWER, OPTIONS=VIEWER),
    "api-rubric-export": api(pk="rubric", GET=VIEWER, OPTIONS=VIEWER),
    "api-members": api(GET=VIEWER, POST=OWNER, OPTIONS=VIEWER),
    "api-member": api(pk="membership", GET=VIEWER, PATCH=OWNER, DELETE=OWNER, OPTIONS=VIEWER),
    "api-import": api(POST=EDITOR, OPTIONS=VIEWER),
    "api-import-job": api(pk="import_job", GET=EDITOR, OPTIONS=EDITOR),
    "api-review-queues": api(GET=VIEWER, POST=EDITOR, OPTIONS=VIEWER),
    "api-review-queue": api(pk="queue", GET=VIEWER, OPTIONS=VIEWER),
    "api-agreement": api(GET=VIEWER, OPTIONS=VIEWER),
    # --- scoring pages
    "scoring:judges": page(GET=EDITOR, POST=OWNER),
    "scoring:endpoint_edit": page(GET=OWNER, POST=OWNER),
    "scoring:endpoint_test": page(POST=EDITOR),
    "scoring:coauthor_panel": page(GET=EDITOR),
    "scoring:coauthor_start": page(POST=EDITOR),
    "scoring:proposal_decide": page(POST=EDITOR),
    "scoring:duplicates_panel": page(GET=VIEWER),
    "scoring:duplicates_merge": page(POST=EDITOR),
    "scoring:batch": page(GET=EDITOR, POST=EDITOR),
    "scoring:job": page(GET=EDITOR),
    "scoring:job_cancel": page(POST=EDITOR),
    "scoring:runs": page(GET=VIEWER, POST=EDITOR),
    "scoring:prompt_verdicts": page(GET=VIEWER),
    "scoring:prompt_regrade": page(POST=EDITOR),
    "scoring:run": page(GET=VIEWER),
    "scoring:run_control": page(POST=EDITOR),
    "scoring:run_review_queue": page(POST=EDITOR),
    "scoring:run_response": page(GET=VIEWER),
    "scoring:agreement": page(GET=VIEWER),
    "scoring:analytics": page(GET=VIEWER),
    "scoring:analytics_compute": page(POST=EDITOR),
    "scoring:analytics_critique": page(POST=EDITOR),
    "scoring:analytics_csv": page(GET=VIEWER),
    "scoring:probes": page(GET=VIEWER, POST=EDITOR),
    "scoring:probe": page(GET=VIEWER),
    "scoring:probe_csv": page(GET=VIEWER),
    "scoring:agreement_csv": page(GET=EDITOR),  # per-item verdicts: editors and owners
    "scoring:exports": page(GET=VIEWER, POST=EDITOR),
    "scoring:export": page(GET=VIEWER),
    "scoring:export_delete": page(POST=OWNER),
    # The fixture's export holds judge verdicts (judge_sft): editors and owners download
    # it; an export without them is downloaded by viewers (tests/test_security.py).
    "scoring:export_file": page(GET=EDITOR),
    # --- scoring API
    "api-endpoints": api(GET=EDITOR, POST=OWNER, OPTIONS=EDITOR),
    "api-endpoint": api(pk="endpoint", GET=EDITOR, PATCH=OWNER, DELETE=OWNER, OPTIONS=EDITOR),
    "api-jobs": api(GET=EDITOR, POST=EDITOR, OPTIONS=EDITOR),
    "api-job": api(pk="job", GET=EDITOR, OPTIONS=EDITOR),
    "api-proposal-decide": api(pk="proposal", POST=EDITOR, OPTIONS=EDITOR),
    "api-exports": api(GET=VIEWER, POST=EDITOR, OPTIONS=VIEWER),
    "api-export": api(pk="export", GET=VIEWER, DELETE=OWNER, OPTIONS=VIEWER),
    "api-export-file": api(pk="export", GET=EDITOR, OPTIONS=VIEWER),  # judge verdicts, as above
    "api-runs": api(GET=VIEWER, POST=EDITOR, OPTIONS=VIEWER),
    "api-run-preview": api(POST=EDITOR, OPTIONS=VIEWER),
    "api-run": api(pk="run", GET=VIEWER, OPTIONS=VIEWER),
    "api-run-results": api(pk="run", GET=VIEWER, OPTIONS=VIEWER),
    "api-run-control": api(pk="run", POST=EDITOR, OPTIONS=VIEWER),
    "api-run-review-queue": api(pk="run", POST=EDITOR, OPTIONS=VIEWER),
    "api-run-analytics": api(pk="run", GET=VIEWER, OPTIONS=VIEWER),
    "api-probes": api(GET=VIEWER, POST=EDITOR, OPTIONS=VIEWER),
    "api-probe": api(pk="probe", GET=VIEWER, OPTIONS=VIEWER),
}

# URL keywords that name an object of the fixture (the others: slug, op, number, name, key).
OBJECT_KWARGS = {
    "prompt_id": "prompt",
    "rubric_id": "rubric",
    "comment_id": "comment",
    "queue_id": "queue",
    "slot_id": "slot",
    "membership_id": "membership",
    "endpoint_id": "endpoint",
    "proposal_id": "proposal",
    "job_id": "job",
    "run_id": "run",
    "response_id": "response",
    "export_id": "export",
    "probe_id": "probe",
}
OK_STATUSES = {200, 201, 204, 301, 302, 303, 400, 409}
MD5 = "django.contrib.auth.hashers.MD5PasswordHasher"


# --- the site's URLs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Url:
    key: str  # the URL name ("namespace:name"), or the namespace and route of an unnamed one
    name: str | None
    route: str
    kwargs: tuple[str, ...]


def _kwargs_of(pattern: URLPattern | URLResolver) -> tuple[str, ...]:
    if isinstance(pattern.pattern, RoutePattern):
        return tuple(pattern.pattern.converters)
    return tuple(pattern.pattern.regex.groupindex)


def site_urls(
    patterns: list | None = None,  # type: ignore[type-arg]
    namespace: str = "",
    route: str = "",
    kwargs: tuple[str, ...] = (),
) -> Iterator[Url]:
    """Every URL pattern the resolver knows, with its namespaced name and keywords."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        here = route + str(pattern.pattern)
        names = kwargs + _kwargs_of(pattern)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}:{pattern.namespace}" if pattern.namespace else namespace
            yield from site_urls(pattern.url_patterns, inner.lstrip(":"), here, names)
        else:
            name = f"{namespace}:{pattern.name}".lstrip(":") if pattern.name else None
            yield Url(name or f"{namespace}:<unnamed {here}>", name, here, names)


def is_admin(url: Url) -> bool:
    return url.key.startswith("admin:")


# --- the fixture: projects A and B, seven personas, one of every object -------------------


@dataclass
class World:
    a: dict[str, object]
    b: dict[str, object]
    users: dict[str, object]
    admin_objects: dict[str, str]


def _objects(project: Project, owner, reviewer) -> dict[str, object]:  # type: ignore[no-untyped-def]
    prompt = PromptFactory(project=project)
    chosen = ResponseFactory(prompt=prompt, source="model-a")
    rejected = ResponseFactory(prompt=prompt, source="model-b")
    label = PreferenceLabel.objects.create(prompt=prompt, chosen=chosen, rejected=rejected)
    criteria = [
        CriterionInput(text="Is correct", points=5),
        CriterionInput(text="Is kind", points=2),
    ]
    rubric = rubric_services.rubric_create(
        project=project, prompt=prompt, title="Rubric", criteria=criteria, author=owner
    )
    rubric_services.rubric_create(
        project=project, title="House style", criteria=criteria, author=owner
    )
    comment = rubric_comments.comment_add(rubric=rubric, author=owner, text="Check the dose.")
    endpoint = JudgeEndpoint.objects.create(
        project=project, name="judge", base_url="http://127.0.0.1:9/v1", model="m"
    )
    job = CoauthorJob.objects.create(
        project=project, endpoint=endpoint, created_by=owner, kind="draft", prompt=prompt
    )
    proposal = Proposal.objects.create(job=job, project=project, prompt=prompt, kind="draft")
    run = run_services.run_create(
        project=project, actor=owner, endpoint=endpoint, mode=Run.Mode.PER_CRITERION
    )
    RunInsights.objects.create(run=run, figures={"criteria": [], "redundant": []})
    probe_run = run_services.run_create(
        project=project, actor=owner, endpoint=endpoint, mode=Run.Mode.PER_CRITERION
    )
    probe = Probe.objects.create(
        project=project, run=probe_run, kinds=["padding"], sample=1, phase=Probe.Phase.DONE,
        report={"kinds": [], "noise": {"value": None, "why": "one sample"}},
    )  # fmt: skip
    queue = queue_services.queue_from_labels(project=project, actor=owner, labels=[label], name="q")
    slot = review_services.slot_next(queue=queue, reviewer=reviewer)
    body = b'{"messages": []}\n'
    export = Export.objects.create(
        project=project,
        created_by=owner,
        kind="judge_sft",
        format="jsonl",
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
    import_job = ImportJob.objects.create(
        project=project, created_by=owner, file_name="x.jsonl", size=1
    )
    return {
        "project": project,
        "prompt": prompt,
        "response": chosen,
        "rubric": rubric,
        "comment": comment,
        "endpoint": endpoint,
        "job": job,
        "proposal": proposal,
        "run": run,
        "probe": probe,
        "queue": queue,
        "slot": slot,
        "export": export,
        "import_job": import_job,
    }


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Built once for the module, in a transaction rolled back at its end."""
    media = tmp_path_factory.mktemp("matrix-media")
    with (
        django_db_blocker.unblock(),
        override_settings(MEDIA_ROOT=str(media), PASSWORD_HASHERS=[MD5]),
        transaction.atomic(),
    ):
        a = Project.objects.create(slug="project-a", name="A")
        b = Project.objects.create(slug="project-b", name="B")
        users = {role: UserFactory(username=f"m-{role}") for role in ("owner", "editor")}
        users |= {role: UserFactory(username=f"m-{role}") for role in ("reviewer", "viewer")}
        memberships = {
            role: MembershipFactory(project=a, user=user, role=role) for role, user in users.items()
        }
        users["outsider"] = UserFactory(username="m-outsider")
        MembershipFactory(project=b, user=users["outsider"], role=Role.OWNER)
        users["superuser"] = UserFactory(username="m-root", is_staff=True, is_superuser=True)
        objects_a = _objects(a, users["owner"], users["reviewer"])
        objects_a["membership"] = memberships["viewer"]
        objects_b = _objects(b, users["outsider"], users["outsider"])
        objects_b["membership"] = Membership.objects.get(project=b, user=users["outsider"])
        admin_objects = {
            f"admin:{model._meta.app_label}_{model._meta.model_name}_": str(
                model._default_manager.values_list("pk", flat=True).first() or 1
            )
            for model in admin.site._registry
        }
        yield World(objects_a, objects_b, users, admin_objects)
        transaction.set_rollback(True)


def _value(world: World, rule: Rule | None, keyword: str, objects: dict[str, object]) -> str:
    if keyword == "slug":
        return world.a["project"].slug  # type: ignore[attr-defined]
    if keyword == "op":
        return "add"
    if keyword == "number":
        return "1"
    if keyword == "name":
        return "train.jsonl"
    if keyword == "key":  # an import format's template
        return "healthbench"
    if keyword == "table":  # an analytics table
        return "criteria"
    if keyword == "uidb64":
        return "MQ"
    if keyword == "token":
        return "no-such-token"
    what = (rule.ids if rule else {}).get(keyword) or OBJECT_KWARGS.get(keyword)
    if what is None:
        raise AssertionError(f"the matrix does not know what <{keyword}> names")
    if what == "membership":
        return str(objects["membership"].pk)  # type: ignore[attr-defined]
    return str(objects[what].pk)  # type: ignore[attr-defined]


def _admin_value(world: World, url: Url, keyword: str) -> str:
    if keyword in ("object_id", "id"):
        prefix = next((p for p in world.admin_objects if url.key.startswith(p)), None)
        return world.admin_objects[prefix] if prefix else "1"
    if keyword == "content_type_id":
        return str(ContentType.objects.get_for_model(Project).pk)
    if keyword == "app_label":
        return "annotation"
    if keyword == "url":
        return "no-such-page/"
    raise AssertionError(f"the matrix does not know what admin's <{keyword}> names")


def path_of(world: World, url: Url, objects: dict[str, object]) -> str:
    if is_admin(url):
        kwargs = {k: _admin_value(world, url, k) for k in url.kwargs}
        if url.name is None:
            return "/admin/" + kwargs.get("url", "")
        return reverse(url.name, kwargs=kwargs)
    rule = RULES.get(url.key)
    kwargs = {k: _value(world, rule, k, objects) for k in url.kwargs}
    return reverse(url.name, kwargs=kwargs)  # type: ignore[arg-type]


# --- what each cell must answer --------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    statuses: frozenset[int]
    what: str
    login: bool | None = False  # a redirect to the login page (None: either way)
    to: str = ""  # where a redirect must go (a path prefix)

    def allows(self, status: int, location: str) -> bool:
        if status not in self.statuses or not location.startswith(self.to):
            return False
        is_login = status == 302 and location.startswith("/login/")
        return self.login is None or is_login == self.login


TO_ADMIN_LOGIN = Expect(frozenset({302}), "a redirect to the admin's login", to="/admin/")
TO_LOGIN = Expect(frozenset({302}), "a redirect to the login page", login=True)
UNAUTHENTICATED = Expect(frozenset({401}), "401")
NOT_ALLOWED = Expect(frozenset({405}), "405")
HIDDEN = Expect(frozenset({404}), "404")
FORBIDDEN = Expect(frozenset({403}), "403")
SERVED = Expect(frozenset(OK_STATUSES), "the view's own answer")
SERVED_PUBLIC = Expect(frozenset(OK_STATUSES), "the view's own answer", login=None)
CROSS_READ = Expect(frozenset({404}), "404 (project B's object under A)")
CROSS_BELOW = Expect(frozenset({403, 404}), "403 or 404 (below the role, B's object under A)")
CROSS_WRITE = Expect(frozenset({400, 404}), "404, or 400 for the empty body (B's object under A)")


def expected(rule: Rule, method: str, persona: str, *, cross: bool = False) -> Expect:
    access = rule.methods.get(method)
    if persona == "anonymous" and rule.kind != "public":
        return TO_LOGIN if rule.kind == "page" else UNAUTHENTICATED
    if access is None:
        return NOT_ALLOWED
    if access == PUBLIC:
        return SERVED_PUBLIC  # logging out, for one, ends on the login page
    if access == SIGNED_IN:
        return SERVED
    if access == STAFF:
        return SERVED if persona == "superuser" else FORBIDDEN
    if persona == "outsider":
        return HIDDEN
    role = Role.OWNER if persona == "superuser" else Role(persona)
    if not role_at_least(role, access):
        # Where the role a method needs depends on the object (an export's downloads),
        # the object is looked up first: B's is then simply not found.
        return CROSS_BELOW if cross else FORBIDDEN
    if cross and not (rule.kind == "api" and method == "OPTIONS"):
        return CROSS_READ if method == "GET" else CROSS_WRITE
    if rule.holder_only and persona != "reviewer":
        return HIDDEN  # the fixture's slot is the reviewer's
    return SERVED


def expected_admin(url: Url, method: str, persona: str) -> Expect:
    """Django's admin is staff only: anyone else is sent to its login page (which is
    public, and answers PATCH and DELETE 405); what it shows staff is Django's business,
    short of a server error."""
    if url.key == "admin:login":
        return NOT_ALLOWED if method in ("PATCH", "DELETE") else SERVED_PUBLIC
    if persona != "superuser":
        return TO_ADMIN_LOGIN
    return Expect(frozenset(range(200, 500)), "no server error", login=None)


# --- requests -------------------------------------------------------------------------------


class Personas:
    """One test client per persona, signed in once; the session cookie is put back before
    every request (a logout inside a rolled-back savepoint deletes only the cookie)."""

    def __init__(self, users: dict[str, object]) -> None:
        self.clients: dict[str, Client] = {"anonymous": Client(raise_request_exception=False)}
        self.cookies: dict[str, str] = {}
        for persona, user in users.items():
            client = Client(raise_request_exception=False)
            client.force_login(user)
            self.clients[persona] = client
            self.cookies[persona] = client.cookies[settings.SESSION_COOKIE_NAME].value

    def request(self, persona: str, method: str, path: str) -> tuple[int, str, str]:
        client = self.clients[persona]
        if persona in self.cookies:
            client.cookies[settings.SESSION_COOKIE_NAME] = self.cookies[persona]
        else:
            client.cookies.clear()
        with transaction.atomic():
            send = client.post if method == "POST" else partial(client.generic, method)
            response = send(path)
            if getattr(response, "streaming", False):
                # Read to the end inside the savepoint; the test client closes the response
                # then (closing it again here would close the database connection).
                for _ in response.streaming_content:  # type: ignore[attr-defined]
                    pass
            transaction.set_rollback(True)
        error = ""
        if response.status_code >= 500 and getattr(response, "exc_info", None):
            error = repr(response.exc_info[1])  # type: ignore[attr-defined]
        return response.status_code, response.get("Location", ""), error


def _cells(world: World, personas: Personas, urls: list[Url], *, cross: bool) -> list[str]:
    objects = world.b if cross else world.a
    wrong = []
    for url in urls:
        path = path_of(world, url, objects)
        for method in METHODS:
            for persona in PERSONAS:
                if is_admin(url):
                    expect = expected_admin(url, method, persona)
                else:
                    expect = expected(RULES[url.key], method, persona, cross=cross)
                status, location, error = personas.request(persona, method, path)
                if not expect.allows(status, location):
                    where = f" → {location}" if location else ""
                    wrong.append(
                        f"{method} {path} ({url.key}) as {persona}: {status}{where}"
                        f"{' ' + error if error else ''}; expected {expect.what}"
                    )
    return wrong


def _report(wrong: list[str], cells: int) -> str:
    shown = "\n".join(wrong[:60])
    more = f"\n… and {len(wrong) - 60} more" if len(wrong) > 60 else ""
    return f"{len(wrong)} of {cells} cells answer otherwise than the rule:\n{shown}{more}"


# --- the tests ------------------------------------------------------------------------------


def test_every_url_has_a_rule_and_every_rule_a_url():
    urls = [u for u in site_urls() if not is_admin(u)]
    keys = {u.key for u in urls}
    missing = sorted(keys - set(RULES))
    assert not missing, (
        "URLs without a rule in tests/test_permission_matrix.py RULES (say who may use "
        f"each method): {missing}"
    )
    stale = sorted(set(RULES) - keys)
    assert not stale, f"rules for URLs that no longer exist: {stale}"
    for url in urls:
        rule = RULES[url.key]
        assert set(rule.methods) <= set(METHODS), url.key
        for keyword in url.kwargs:
            known = keyword in (
                "slug",
                "op",
                "number",
                "name",
                "uidb64",
                "token",
                "key",
                "table",
                *OBJECT_KWARGS,
                *rule.ids,
            )
            assert known, f"{url.key}: the matrix does not know what <{keyword}> names"


@pytest.mark.django_db
def test_permission_matrix(world, settings):  # type: ignore[no-untyped-def]
    """Every URL × method × persona with project A's own ids."""
    settings.ALLOW_PROJECT_CREATION = "staff"  # the production default
    personas = Personas(world.users)
    urls = list(site_urls())
    wrong = _cells(world, personas, urls, cross=False)
    cells = len(urls) * len(METHODS) * len(PERSONAS)
    assert not wrong, _report(wrong, cells)


@pytest.mark.django_db
def test_project_b_ids_under_project_a_slug(world, settings):  # type: ignore[no-untyped-def]
    """Every URL that names objects, with project B's objects under project A's slug."""
    settings.ALLOW_PROJECT_CREATION = "staff"
    personas = Personas(world.users)
    urls = [
        u
        for u in site_urls()
        if not is_admin(u) and any(k in OBJECT_KWARGS or k == "pk" for k in u.kwargs)
    ]
    assert len(urls) > 40
    wrong = _cells(world, personas, urls, cross=True)
    cells = len(urls) * len(METHODS) * len(PERSONAS)
    assert not wrong, _report(wrong, cells)


def test_the_rule_itself():
    """The expectations the matrix derives, spelled out for one URL."""
    rule = RULES["annotation:members"]
    assert expected(rule, "GET", "anonymous") is TO_LOGIN
    assert expected(rule, "GET", "outsider") is HIDDEN
    assert expected(rule, "POST", "editor") is FORBIDDEN
    assert expected(rule, "POST", "owner") is SERVED
    assert expected(rule, "POST", "superuser") is SERVED
    assert expected(rule, "DELETE", "owner") is NOT_ALLOWED
    assert expected(rule, "GET", "viewer", cross=True) is CROSS_READ
    assert expected(RULES["api-members"], "GET", "anonymous") is UNAUTHENTICATED
    assert expected(RULES["annotation:review_item"], "GET", "owner") is HIDDEN
    assert expected(RULES["api-projects"], "POST", "owner") is FORBIDDEN  # staff only
    assert not TO_LOGIN.allows(302, "/p/a/")
    assert not SERVED.allows(302, "/login/?next=/p/a/")


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["viewer", "editor", "owner"])
def test_every_project_page_shows_the_role_and_only_usable_tabs(world, persona):  # type: ignore[no-untyped-def]
    """Every full page of a project (with the project's tabs) says the member's role, and
    offers the Import, Judges and Co-author batch tabs to editors and owners only."""
    personas = Personas(world.users)
    client = personas.clients[persona]
    client.cookies[settings.SESSION_COOKIE_NAME] = personas.cookies[persona]
    shown = 0
    for url in site_urls():
        rule = RULES.get(url.key)
        if rule is None or rule.kind != "page" or "slug" not in url.kwargs:
            continue
        if "GET" not in rule.methods or rule.holder_only:
            continue
        response = client.get(path_of(world, url, world.a))
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        html = response.content.decode()
        if 'aria-label="Project"' not in html:
            continue  # a fragment (an htmx panel), not a page
        shown += 1
        assert f"your role: {persona}" in html, url.key
        nav = html.split('aria-label="Project"', 1)[1].split("</nav>", 1)[0]
        for tab in ("/judges/", "/coauthor/", "/import/"):  # the editors' and owners' tabs
            assert (tab in nav) == (persona != "viewer"), (url.key, tab)
    assert shown >= 10
