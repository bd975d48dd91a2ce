"""The Content-Security-Policy in headless Chromium: the studio's main pages, visited with a
listener for policy violations (and script errors), raise none, and htmx still works with
eval off: adding a criterion in the editor and reviewing a pair from the keyboard."""

from __future__ import annotations

import pytest

from annotation.projects import services as project_services
from annotation.prompts.models import PreferenceLabel
from annotation.reviews import queues as queue_services
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.datasets.models import Export
from scoring.judges.models import JudgeEndpoint
from scoring.runs import services as run_services
from scoring.runs import tasks as run_tasks
from scoring.runs.models import Run
from tests.browser.conftest import login
from tests.factories import MembershipFactory, PromptFactory, ResponseFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

# Recorded from the first byte of every page, before any of its own scripts run.
LISTEN = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(
    `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`
  );
});
"""
SETTLED = "window.htmx !== undefined && document.readyState === 'complete'"


class Watch:
    """Collects violations (the DOM event and Chromium's console report) and page errors."""

    def __init__(self, page) -> None:  # type: ignore[no-untyped-def]
        self.page = page
        self.problems: list[str] = []
        page.add_init_script(LISTEN)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"{page.url}: {error}"))

    def _console(self, message) -> None:  # type: ignore[no-untyped-def]
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.problems.append(f"{self.page.url}: console: {message.text}")

    def visit(self, url: str, ready: str = "") -> None:
        response = self.page.goto(url)
        assert response is not None and response.ok, url
        policy = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy, url
        self.page.wait_for_function(SETTLED)
        if ready:
            self.page.wait_for_selector(ready)
        self.collect()

    def collect(self) -> None:
        found = self.page.evaluate("window.__violations || []")
        self.problems.extend(f"{self.page.url}: {v}" for v in found)
        self.page.evaluate("window.__violations = []")


def _project():  # type: ignore[no-untyped-def]
    owner = UserFactory(username="dr-csp")
    reviewer = UserFactory(username="rev-csp")
    project = project_services.project_create(name="Policy", slug="policy", owner=owner)
    MembershipFactory(project=project, user=reviewer, role="reviewer")
    prompt = PromptFactory(
        project=project,
        external_id="csp-1",
        messages=[{"role": "user", "content": "Is <b>this</b> bold? <script>x()</script>"}],
    )
    chosen = ResponseFactory(prompt=prompt, source="model-a", content="A careful answer.")
    rejected = ResponseFactory(prompt=prompt, source="model-b", content="A careless one.")
    label = PreferenceLabel.objects.create(prompt=prompt, chosen=chosen, rejected=rejected)
    rubric = rubric_services.rubric_create(
        project=project,
        prompt=prompt,
        title="Answers",
        author=owner,
        criteria=[
            CriterionInput(text="Gives the dose with units", points=5),
            CriterionInput(text="Recommends doubling the dose", points=-5, category="pitfall"),
        ],
    )
    endpoint = JudgeEndpoint.objects.create(
        project=project, name="judge", base_url="http://127.0.0.1:9/v1", model="m"
    )
    queue = queue_services.queue_from_labels(
        project=project, actor=owner, labels=[label], name="Pairs", overlap=1
    )
    Export.objects.create(
        project=project, created_by=owner, kind="rl_verl", format="jsonl", status="failed"
    )
    return owner, project, prompt, rubric, endpoint, queue


def test_pages_raise_no_policy_violation_and_htmx_works_without_eval(
    page, live_server, monkeypatch
):
    # The run below stays queued (no worker): its page polls its progress with htmx.
    monkeypatch.setattr(run_tasks.score_chunk, "apply_async", lambda *args, **kwargs: None)
    owner, project, prompt, rubric, endpoint, queue = _project()
    run = run_services.run_create(project=project, actor=owner, endpoint=endpoint, mode="grouped")
    assert Run.objects.filter(pk=run.pk).exists()
    base = f"{live_server.url}/p/{project.slug}"
    watch = Watch(page)

    watch.visit(f"{live_server.url}/login/")
    login(page, live_server, "dr-csp")
    watch.collect()
    for url, ready in [
        (f"{live_server.url}/", ""),
        (f"{base}/", "#prompt-table"),
        (f"{base}/prompts/{prompt.pk}/", "#editor"),
        (f"{base}/rubrics/{rubric.pk}/history/", ""),
        (f"{base}/runs/", ""),
        (f"{base}/runs/{run.pk}/", "#progress"),
        (f"{base}/reviews/", ""),
        (f"{base}/reviews/mine/", ""),
        (f"{base}/reviews/{queue.pk}/adjudicate/", ""),
        (f"{base}/agreement/", ""),
        (f"{base}/exports/", ""),
        (f"{base}/judges/", ""),
        (f"{base}/coauthor/", ""),
        (f"{base}/import/", ""),
        (f"{base}/members/", ""),
        (f"{live_server.url}/account/", ""),
    ]:
        watch.visit(url, ready)
    # Behaviour that was inline handlers, now in static/js/studio.js: the token field
    # selects itself on a click; deleting an export asks first.
    page.click("input[aria-label='API token']")
    selected = page.evaluate(
        "document.activeElement.selectionEnd - document.activeElement.selectionStart"
    )
    assert selected == len(page.input_value("input[aria-label='API token']")) > 0
    watch.visit(f"{base}/exports/", "")
    posts: list[str] = []
    page.on(
        "request", lambda request: posts.append(request.url) if request.method == "POST" else None
    )
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("form[data-confirm] button.danger")
    page.evaluate("1")  # a round trip after the click: a submitted form would have posted
    assert posts == [] and Export.objects.filter(project=project).count() == 1
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("form[data-confirm] button.danger")
    page.wait_for_selector("text=No export yet.")
    assert not Export.objects.filter(project=project).exists()
    watch.collect()
    # The API docs: Swagger UI renders from its own script, with the studio's policy.
    response = page.goto(f"{live_server.url}/api/docs/")
    assert response is not None and response.ok
    assert "script-src 'self'" in response.headers.get("content-security-policy", "")
    page.wait_for_selector("#swagger-ui .info", timeout=20_000)
    watch.collect()

    # htmx with eval off: the editor adds a criterion in place (an htmx POST and swap).
    watch.visit(f"{base}/prompts/{prompt.pk}/", "#editor")
    page.click("#add-card summary")
    form = page.locator("#add-form")
    form.locator("textarea[name=text]").fill("Names the maximum daily dose")
    form.locator("input[name=points]").fill("3")
    form.locator("button.primary").click()
    page.wait_for_function("document.querySelectorAll('#criteria-list > li[data-key]').length == 3")
    assert "Names the maximum daily dose" in page.inner_text("#criteria-list")
    # The run page's progress polls by itself (hx-trigger="every 1s"): it is replaced.
    watch.visit(f"{base}/runs/{run.pk}/", "#progress")
    page.evaluate("document.querySelector('#progress').dataset.seen = '1'")
    page.wait_for_function(
        "document.querySelector('#progress') && !document.querySelector('#progress').dataset.seen",
    )
    watch.collect()

    # The reviewer decides a pair from the keyboard (1, then Enter: an htmx commit).
    page.click("header form button.link")
    page.wait_for_url(f"{live_server.url}/login/")
    login(page, live_server, "rev-csp")
    watch.visit(f"{base}/reviews/{queue.pk}/review/", "#decision")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.wait_for_selector("#judge-verdict", timeout=15_000)
    assert "You" in page.inner_text("#judge-verdict")
    watch.collect()
    watch.visit(f"{base}/reviews/{queue.pk}/review/", "")

    assert not watch.problems, "\n".join(watch.problems)
