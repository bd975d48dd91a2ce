"""Page latency at a million judgments: the studio served by gunicorn (DEBUG off) on
PostgreSQL, driven by locust (headless) with 20 signed-in users, and the SQL queries each
page makes.

Setup (not timed; in a child process, with COPY): a project of 100,000 prompts with 5
responses each (500,000), a dataset preference label per prompt, a project-wide rubric (1
criterion) and per-prompt rubrics on 20,000 prompts (5 criteria each; approved, in review
or draft), a finished per-criterion run over every response with its chunks, 1,000,000
judgments and their run links, a review queue of 10,000 pairs (2 reviewers each; 30% of
them reviewed), 60 finished exports, an owner and 20 reviewers with known passwords; then
VACUUM ANALYZE, and the run's page summary as the worker stores it when a run finishes
(timed apart). ``--scale 0.1`` makes a tenth of everything.

Measured: each account signs in through /login/ (django-axes in the way, as for anyone);
locust's users (4 sessions of the owner, 16 reviewers, each waiting 0.5 to 2 s between
pages: ``--think``) open the project list, the project page and its prompt list (filtered,
searched, last page), a prompt's page with its rubric editor, the runs list and the run's
page, the review queues, review
next, the pair and its commit (an htmx POST with the CSRF token), the agreement and the
exports pages, for ``--run-time`` seconds. One request per page through Django's test
client (before the load, in a child process) counts its SQL queries (``--profile`` also
prints each page's slowest queries). Prints p50 / p95 / p99 per page, queries per request,
the goal (p95 under 150 ms) and the ratio p95 / goal (under 1 meets it).

    python benchmarks/bench_pages.py [--scale 1] [--users 20] [--run-time 180] [--workers 4]
                                     [--think 0.5 2] [--skip "run page,agreement"]
                                     [--reuse] [--profile]

Needs PostgreSQL (BENCH_DATABASE_URL, a scratch database that is dropped and seeded again;
default postgres://postgres@127.0.0.1:5432/bench_pages) and locust (requirements-dev.txt).
``--reuse`` skips the seed and measures the database a previous run left (migrations are
applied first), to compare a change without seeding again. ``--skip`` leaves pages out of
the load and the query count (to see what the others do without one of them).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import http.cookiejar
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 150.0
PASSWORD = "bench-pages-password"  # noqa: S105 - a scratch database's accounts
SLUG = "bench"
REVIEWERS = (
    20  # accounts: the locust users' (up to 16 with 20 users) and the query count's (the last)
)
OWNER_SESSIONS = 4
THINK = (0.5, 2.0)
SEARCH = "dizziness"

# (name, what each page is, in the order of the table)
PAGES = [
    ("project list", "/"),
    ("prompt list", "the project page: rubrics, filters, first page of prompts"),
    ("prompt list filtered", "?has_rubric=yes&rubric_status=approved&source=model-2"),
    ("prompt list search", f"?q={SEARCH}"),
    ("prompt list last page", "?page=<last>"),
    ("prompt page", "a prompt with its rubric editor"),
    ("runs list", "/runs/"),
    ("run page", "the finished run of 1M judgments"),
    ("review queues", "/reviews/"),
    ("review next", "claims a pair (302 to it)"),
    ("review item", "the pair to decide"),
    ("review commit", "htmx POST of the decision"),
    ("agreement", "/agreement/"),
    ("exports", "/exports/"),
]

SYMPTOMS = [
    "headache", "fever", "cough", "rash", "fatigue", "nausea", "dizziness", "back pain",
    "insomnia", "chest pain", "sore throat", "joint pain", "heartburn", "anxiety",
    "shortness of breath", "blurred vision", "numbness", "palpitations", "swelling",
    "abdominal pain",
]  # fmt: skip


def _n(base: int, scale: float, least: int = 1) -> int:
    return max(least, round(base * scale))


# --- child: the seed -------------------------------------------------------------------------


def seed(scale: float) -> dict[str, Any]:
    """Everything the pages read, written with COPY (annotation.bulk) in one transaction."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation.bulk import insert_rows, new_ids
    from annotation.projects.models import Membership, Role
    from annotation.projects.services import project_create
    from annotation.prompts.models import PreferenceLabel, Prompt, Response, content_hash
    from annotation.reviews.models import PairwiseReview, ReviewItem, ReviewQueue, ReviewSlot
    from annotation.rubrics.models import Criterion, Rubric, RubricVersion
    from annotation.rubrics.services import CriterionInput, rubric_create
    from scoring.datasets.models import Export
    from scoring.engine.judging import TEMPLATE_VERSIONS
    from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment
    from scoring.runs.summary import summary_compute

    call_command("migrate", verbosity=0)
    n_prompts = _n(100_000, scale, 50)
    n_rubric_prompts = _n(20_000, scale, 10)
    n_items = _n(10_000, scale, 20)
    per_prompt, own_criteria, chunk = 5, 5, 500
    now = timezone.now()
    started = time.perf_counter()
    users = get_user_model()
    with transaction.atomic():
        owner = users.objects.create_user("bench-owner", password=PASSWORD, is_staff=True)
        project = project_create(name="Bench", slug=SLUG, owner=owner)
        hashed = make_password(PASSWORD)
        reviewers = users.objects.bulk_create(
            users(username=f"bench-reviewer-{i:02d}", password=hashed) for i in range(REVIEWERS)
        )
        Membership.objects.bulk_create(
            Membership(project=project, user=u, role=Role.REVIEWER) for u in reviewers
        )
        wide = rubric_create(
            project=project, title="Every answer", author=owner,
            criteria=[CriterionInput(text="Advises seeing a doctor when a symptom is severe or "
                                          "lasts, and says which signs mean going now.", points=5)],
        )  # fmt: skip
        Rubric.objects.filter(pk=wide.pk).update(
            status=Rubric.Status.APPROVED, approved_version=wide.current_version
        )
        wide_criteria = [
            {"key": str(c.key), "text": c.text, "points": c.points, "category": c.category,
             "tags": list(c.tags), "version": c.version_id}
            for c in Criterion.objects.filter(version=wide.current_version)
        ]  # fmt: skip

        # prompts, responses, one dataset preference label per prompt
        prompt_ids = new_ids(Prompt, n_prompts)

        def question(p: int) -> str:
            a, b, c = (SYMPTOMS[(p * k) % len(SYMPTOMS)] for k in (7, 11, 13))
            return (f"Question {p}: I have had {a} and {b} for {p % 9 + 2} days, and since "
                    f"yesterday some {c}. What should I do, and when should I see a doctor?")  # fmt: skip

        def prompt_rows() -> Any:
            for n, pid in enumerate(prompt_ids):
                text = question(n)
                yield (pid, project.pk, f"bench-{n:06d}", [{"role": "user", "content": text}],
                       "", {}, text, now)  # fmt: skip

        insert_rows(Prompt, ["id", "project_id", "external_id", "messages", "reference_answer",
                             "metadata", "search_text", "created_at"], prompt_rows())  # fmt: skip
        response_ids = new_ids(Response, n_prompts * per_prompt)
        body = "Rest, drink water and watch the symptoms; see a doctor if they get worse. " * 4

        def response_rows() -> Any:
            for n, rid in enumerate(response_ids):
                pid, r = prompt_ids[n // per_prompt], n % per_prompt
                text = f"{body}(model {r}, prompt {pid})"
                yield (rid, pid, f"model-{r}", text, content_hash(text), {}, now)

        insert_rows(Response, ["id", "prompt_id", "source", "content", "content_hash",
                               "metadata", "created_at"], response_rows())  # fmt: skip
        label_ids = new_ids(PreferenceLabel, n_prompts)
        insert_rows(
            PreferenceLabel,
            ["id", "prompt_id", "chosen_id", "rejected_id", "source", "created_by_id", "created_at"],
            ((label_ids[n], pid, response_ids[n * per_prompt], response_ids[n * per_prompt + 1],
              PreferenceLabel.Source.DATASET, None, now) for n, pid in enumerate(prompt_ids)),
        )  # fmt: skip

        # per-prompt rubrics: every fifth prompt, one version of 5 criteria each
        rubric_prompts = prompt_ids[:: max(1, n_prompts // n_rubric_prompts)][:n_rubric_prompts]
        rubric_ids = new_ids(Rubric, len(rubric_prompts))
        version_ids = new_ids(RubricVersion, len(rubric_prompts))
        statuses = ["approved", "approved", "in_review", "draft", "draft"]
        insert_rows(
            Rubric,
            ["id", "project_id", "prompt_id", "title", "status", "current_version_id",
             "approved_version_id", "created_at", "updated_at"],
            ((rid, project.pk, pid, f"Rubric of prompt {pid}", statuses[n % 5], vid,
              vid if statuses[n % 5] == "approved" else None, now, now)
             for n, (rid, pid, vid) in enumerate(zip(rubric_ids, rubric_prompts, version_ids, strict=True))),
        )  # fmt: skip
        insert_rows(
            RubricVersion,
            ["id", "rubric_id", "number", "parent_id", "author_id", "author_model", "note",
             "created_at"],
            ((vid, rid, 1, None, owner.pk, "", "", now)
             for rid, vid in zip(rubric_ids, version_ids, strict=True)),
        )  # fmt: skip
        categories = ["essential", "important", "important", "optional", "pitfall"]
        own: dict[int, list[dict[str, Any]]] = {}

        def criterion_rows() -> Any:
            for pid, vid in zip(rubric_prompts, version_ids, strict=True):
                rows = own[pid] = []
                for i in range(own_criteria):
                    key = hashlib.md5(f"{vid}:{i}".encode()).hexdigest()  # noqa: S324 - a uuid
                    key = f"{key[:8]}-{key[8:12]}-{key[12:16]}-{key[16:20]}-{key[20:]}"
                    text = (f"Point {i} for prompt {pid}: names {SYMPTOMS[(pid + i) % len(SYMPTOMS)]} "
                            "and says how long to wait before seeing a doctor")  # fmt: skip
                    points = -2.0 if categories[i] == "pitfall" else float(5 - i)
                    rows.append({"key": key, "text": text, "points": points,
                                 "category": categories[i], "tags": [], "version": vid})  # fmt: skip
                    yield (vid, key, i, text, points, categories[i], "principle", [], "human", "")

        insert_rows(Criterion, ["version_id", "key", "position", "text", "points", "category",
                                "kind", "tags", "provenance", "provenance_model"],
                    criterion_rows())  # fmt: skip

        # a finished per-criterion run over every response: units, chunks, judgments, links
        template = TEMPLATE_VERSIONS["criterion"]
        units = []
        for n, rid in enumerate(response_ids):
            pid = prompt_ids[n // per_prompt]
            for c in wide_criteria + own.get(pid, []):
                key = hashlib.sha256(f"{rid}:{c['key']}".encode()).hexdigest()
                units.append({"r": rid, "s": 0, "crit": [c], "k": key})
        run = Run.objects.create(
            project=project, created_by=owner, name="Every response", mode=Run.Mode.PER_CRITERION,
            status=Run.Status.DONE, model="fake-judge", template_version=template,
            judge_hash="0" * 64, total=len(units), done=len(units), calls=len(units),
            prompt_tokens=900 * len(units), completion_tokens=80 * len(units),
            started_at=now - timedelta(hours=3), finished_at=now,
        )  # fmt: skip
        insert_rows(RunChunk, ["run_id", "index", "status", "units", "attempts", "claimed_at",
                               "retry"],
                    ((run.pk, i, "done", units[s : s + chunk], 1, now, False)
                     for i, s in enumerate(range(0, len(units), chunk))))  # fmt: skip
        judgment_ids = new_ids(Judgment, len(units))
        insert_rows(
            Judgment,
            ["id", "key", "mode", "response_id", "other_id", "criterion_key", "sample", "model",
             "template_version", "met", "probability", "rating", "winner", "detail",
             "explanation", "error", "created_by_run_id", "calls", "prompt_tokens",
             "completion_tokens", "cached_tokens", "cost", "latency", "created_at"],
            ((jid, u["k"], "per_criterion", u["r"], None, u["crit"][0]["key"], 0, "fake-judge",
              template, n % 3 != 0, None, None, "", {}, "The response says so in its second "
              "sentence.", "", run.pk, 1, 900, 80, 0, 0.0, 0.4, now)
             for n, (jid, u) in enumerate(zip(judgment_ids, units, strict=True))),
        )  # fmt: skip
        insert_rows(RunJudgment, ["run_id", "judgment_id", "reused"],
                    ((run.pk, jid, False) for jid in judgment_ids))  # fmt: skip
        n_judgments = len(units)
        del units

        # a review queue of the first prompts' dataset pairs, 30% of it reviewed by two
        queue = ReviewQueue.objects.create(
            project=project, name="Dataset pairs", origin=ReviewQueue.Origin.LABELS, overlap=2,
            seed=7, judge_name="dataset label", created_by=owner,
        )  # fmt: skip
        versions = dict(zip(rubric_prompts, version_ids, strict=True))
        approved = {p for n, p in enumerate(rubric_prompts) if statuses[n % 5] == "approved"}
        item_ids = new_ids(ReviewItem, n_items)
        reviewed = int(n_items * 0.3)
        finals = {}
        for n in range(reviewed):
            winners = ("a", "a" if n % 4 else "b")
            finals[n] = winners[0] if winners[0] == winners[1] else ""
        insert_rows(
            ReviewItem,
            ["id", "queue_id", "position", "prompt_id", "response_a_id", "response_b_id",
             "rubric_version_id", "judge", "final", "final_source", "final_by_id", "final_at",
             "label_id"],
            ((iid, queue.pk, n, prompt_ids[n], response_ids[n * per_prompt],
              response_ids[n * per_prompt + 1],
              versions.get(prompt_ids[n]) if prompt_ids[n] in approved else None,
              {"winner": "a", "source": "dataset"}, finals.get(n, ""),
              "consensus" if finals.get(n) else "", None, now if finals.get(n) else None, None)
             for n, iid in enumerate(item_ids)),
        )  # fmt: skip
        slot_ids = new_ids(ReviewSlot, 2 * n_items)

        def slot_rows() -> Any:
            for n, iid in enumerate(item_ids):
                for s in range(2):
                    who = reviewers[(n + s) % REVIEWERS].pk if n < reviewed else None
                    status = "done" if n < reviewed else "open"
                    yield (slot_ids[2 * n + s], iid, s, status, who, None, (n + s) % 2 == 1,
                           now - timedelta(minutes=5) if who else None)  # fmt: skip

        insert_rows(ReviewSlot, ["id", "item_id", "index", "status", "reviewer_id",
                                 "locked_until", "swapped", "claimed_at"], slot_rows())  # fmt: skip

        def review_rows() -> Any:
            for n in range(reviewed):
                for s in range(2):
                    winner = "a" if s == 0 or n % 4 else "b"
                    yield (slot_ids[2 * n + s], item_ids[n], reviewers[(n + s) % REVIEWERS].pk,
                           winner, (n + s) % 2 == 1, "{}", "", 4, 31.5, False, False, False,
                           None, now - timedelta(seconds=reviewed - n))  # fmt: skip

        # COPY by hand: insert_rows writes a null UUID (problem_criterion) as the text "None"
        columns = (
            "slot_id",
            "item_id",
            "reviewer_id",
            "winner",
            "shown_swapped",
            "criteria",
            "rationale",
            "confidence",
            "seconds",
            "saw_judge_before_commit",
            "judge_wrong",
            "rubric_problem",
            "problem_criterion",
            "committed_at",
        )
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(
                f"COPY {PairwiseReview._meta.db_table} ({', '.join(columns)}) FROM STDIN"
            ) as copy,
        ):
            for row in review_rows():
                copy.write_row(row)

        # finished exports (the page lists the latest 50)
        options = {"kind": "judge_sft", "format": "parquet", "versions": "latest",
                   "ratios": [0.9, 0.05, 0.05]}  # fmt: skip
        Export.objects.bulk_create(
            Export(project=project, created_by=owner, kind="judge_sft", format="parquet",
                   options=options, status=Export.Status.DONE, rows_total=n_judgments,
                   rows_done=n_judgments, studio_version="bench", started_at=now, finished_at=now,
                   files=[{"name": f"{split}.parquet", "sha256": "0" * 64, "bytes": 10**8,
                           "rows": n_judgments // 3} for split in ("train", "validation", "test")])
            for _ in range(60)
        )  # fmt: skip
    seconds = time.perf_counter() - started
    connection.close()
    with connection.cursor() as cursor:  # planner statistics of the freshly loaded tables
        cursor.execute("VACUUM ANALYZE")
    # what the worker does when a run finishes: the run page's stored summary
    summarised = time.perf_counter()
    summary_compute(run_id=run.pk)
    summary_s = time.perf_counter() - summarised
    return {
        "prompts": n_prompts,
        "responses": len(response_ids),
        "judgments": n_judgments,
        "rubrics": len(rubric_ids) + 1,
        "review_items": n_items,
        "seed_s": round(seconds),
        "summary_s": round(summary_s, 1),
        "total_s": round(time.perf_counter() - started),
    }


# --- child: the pages ----------------------------------------------------------------------


def describe() -> dict[str, Any]:
    """The seeded database's URLs and figures (after applying any new migration)."""
    from django.core.management import call_command
    from django.db import connection

    from annotation.projects.models import Project
    from annotation.prompts.models import Prompt, Response
    from annotation.reviews.models import ReviewQueue
    from annotation.rubrics.models import Rubric
    from scoring.runs.models import Judgment, Run

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    project = Project.objects.get(slug=SLUG)
    prompts = Prompt.objects.filter(project=project).count()
    rubric_prompts = list(
        Rubric.objects.filter(project=project, prompt__isnull=False)
        .order_by("prompt_id")
        .values_list("prompt_id", flat=True)
    )
    base = f"/p/{SLUG}/"
    step = max(1, len(rubric_prompts) // 200)
    return {
        "prompts": prompts,
        "responses": Response.objects.filter(prompt__project=project).count(),
        "judgments": Judgment.objects.count(),
        "rubrics": Rubric.objects.filter(project=project).count(),
        "urls": {
            "project list": "/",
            "prompt list": base,
            "prompt list filtered": base + "?has_rubric=yes&rubric_status=approved&source=model-2",
            "prompt list search": base + f"?q={SEARCH}",
            "prompt list last page": base + f"?page={-(-prompts // 50)}",
            "runs list": base + "runs/",
            "run page": base + f"runs/{Run.objects.get(project=project).pk}/",
            "review queues": base + "reviews/",
            "review next": base + f"reviews/{ReviewQueue.objects.get(project=project).pk}/review/",
            "agreement": base + "agreement/",
            "exports": base + "exports/",
        },
        "prompt_pages": [base + f"prompts/{p}/" for p in rubric_prompts[::step][:200]],
    }


def count_queries(config: dict[str, Any], profile: bool) -> dict[str, Any]:
    """One request per page through the test client: its SQL queries (and, with
    ``profile``, the slowest of them with their time)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    users = get_user_model()
    owner, reviewer = Client(), Client()
    owner.force_login(users.objects.get(username="bench-owner"))
    reviewer.force_login(users.objects.get(username=f"bench-reviewer-{REVIEWERS - 1:02d}"))
    out: dict[str, Any] = {}

    def measure(name: str, call: Any) -> Any:
        if name in config["skip"]:
            return None
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = call()
            ms = (time.perf_counter() - started) * 1000
        slowest = sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:3]
        out[name] = {
            "queries": len(queries),
            "ms": ms,
            "status": response.status_code,
            "slowest": [(float(q["time"]) * 1000, q["sql"][:600]) for q in slowest]
            if profile
            else [],
        }
        return response

    urls = config["urls"]
    for name in ("project list", "prompt list", "prompt list filtered", "prompt list search",
                 "prompt list last page", "runs list", "run page", "review queues", "agreement",
                 "exports"):  # fmt: skip
        owner.get(urls[name])  # warm: templates compiled, connection open
        measure(name, lambda url=urls[name]: owner.get(url))
    owner.get(config["prompt_pages"][1])
    measure("prompt page", lambda: owner.get(config["prompt_pages"][0]))
    claimed = measure("review next", lambda: reviewer.get(urls["review next"]))
    if claimed is not None and claimed.status_code == 302:
        item = claimed["Location"]
        page = measure("review item", lambda: reviewer.get(item)) or reviewer.get(item)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
        data = {"choice": "A", "seconds": "12.5", "rationale": ""}
        if token:
            data["csrfmiddlewaretoken"] = token.group(1)
        measure(
            "review commit", lambda: reviewer.post(item + "commit/", data, HTTP_HX_REQUEST="true")
        )
    return out


# --- driver --------------------------------------------------------------------------------

LOCUSTFILE = r"""
import json, os, random, re
from locust import HttpUser, between, task

CONFIG = json.load(open(os.environ["BENCH_PAGES_CONFIG"]))
URLS = CONFIG["urls"]
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_owners = iter(range(10**6))
_reviewers = iter(range(10**6))


class Browsing(HttpUser):
    abstract = True
    wait_time = between(*CONFIG["think"])

    def page(self, name, url=None, ok=(200,), **kwargs):
        if name in CONFIG["skip"]:
            return None
        with self.client.get(url or URLS[name], name=name, allow_redirects=False,
                             timeout=CONFIG["timeout"], catch_response=True, **kwargs) as response:
            if response.status_code not in ok:
                response.failure(f"HTTP {response.status_code}")
            return response

    def sign_in(self, cookies):
        for name, value in cookies.items():
            self.client.cookies.set(name, value)

    @task
    def project_list(self):
        self.page("project list")

    @task
    def prompt_list(self):
        self.page("prompt list")

    @task
    def prompt_list_filtered(self):
        self.page("prompt list filtered")

    @task
    def prompt_list_search(self):
        self.page("prompt list search")

    @task
    def prompt_list_last_page(self):
        self.page("prompt list last page")

    @task
    def prompt_page(self):
        self.page("prompt page", random.choice(CONFIG["prompt_pages"]))

    @task
    def runs_list(self):
        self.page("runs list")

    @task
    def run_page(self):
        self.page("run page")

    @task
    def review_queues(self):
        self.page("review queues")

    @task
    def agreement(self):
        self.page("agreement")

    @task
    def exports(self):
        self.page("exports")


class Owner(Browsing):
    fixed_count = CONFIG["owner_sessions"]

    def on_start(self):
        self.sign_in(CONFIG["owner"][next(_owners) % len(CONFIG["owner"])])


class Reviewer(Browsing):
    def on_start(self):
        self.sign_in(CONFIG["reviewers"][next(_reviewers) % len(CONFIG["reviewers"])])

    @task(4)
    def review(self):
        claimed = self.page("review next", ok=(200, 302))
        if claimed is None or claimed.status_code != 302:
            return  # nothing left for this reviewer
        item = claimed.headers["Location"]
        page = self.page("review item", item)
        token = TOKEN.search(page.text or "") if page is not None else None
        if token is None:
            return
        with self.client.post(item + "commit/", name="review commit", timeout=CONFIG["timeout"],
                              catch_response=True, allow_redirects=False,
                              headers={"HX-Request": "true", "HX-Target": "review"},
                              data={"csrfmiddlewaretoken": token.group(1), "seconds": "14.2",
                                    "choice": random.choice(["A", "B", "tie"]),
                                    "rationale": "", "confidence": "4"}) as response:
            if response.status_code != 200 or b"no longer yours" in response.content:
                response.failure(f"HTTP {response.status_code}")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child(step: str, env: dict[str, str], *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", step, *extra], cwd=ROOT, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"{step} failed:\n{out.stderr[-4000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _sign_in(base: str, username: str) -> dict[str, str]:
    """The cookies of a session signed in through /login/, as a person would."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/login/", timeout=60).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if token is None:
        raise SystemExit("No CSRF token on /login/")
    form = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)}
    opener.open(base + "/login/", urllib.parse.urlencode(form).encode(), timeout=60).read()
    cookies = {c.name: c.value for c in jar}
    if "sessionid" not in cookies:
        raise SystemExit(f"{username} could not sign in")
    return cookies


def _wait_until_up(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if server.poll() is not None:
            raise SystemExit(f"gunicorn stopped:\n{log.read_text()[-3000:]}")
        try:
            if urllib.request.urlopen(base + "/healthz", timeout=5).status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer /healthz")


def _locust_stats(prefix: Path) -> dict[str, dict[str, float]]:
    rows = {}
    with open(f"{prefix}_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                continue
            rows[row["Name"]] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "p50": float(row["50%"] or 0),
                "p95": float(row["95%"] or 0),
                "p99": float(row["99%"] or 0),
            }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1: 1M judgments; 0.1: 100k")
    parser.add_argument("--users", type=int, default=20, help="concurrent locust users")
    parser.add_argument(
        "--run-time",
        type=int,
        default=180,
        help="seconds of load (about 200 requests a page: a p95 from 60 would be its 3rd-slowest)",
    )
    parser.add_argument(
        "--think", type=float, nargs=2, default=THINK, metavar=("MIN", "MAX"),
        help="seconds each user waits between pages, drawn uniformly",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--timeout", type=int, default=120, help="gunicorn's worker timeout (s)")
    parser.add_argument("--reuse", action="store_true", help="measure the last seeded database")
    parser.add_argument(
        "--skip", default="", help='pages left out, by name, comma-separated: e.g. "run page"'
    )
    parser.add_argument("--profile", action="store_true", help="print each page's slow queries")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rubricstudio.settings")
        import django

        django.setup()
        if args.child == "seed":
            result = seed(args.scale)
        elif args.child == "describe":
            result = describe()
        else:
            result = count_queries(json.loads(Path(args.config).read_text()), args.profile)
        print(json.dumps(result))
        return

    url = os.environ.get("BENCH_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/bench_pages"
    if not url.startswith("postgres"):
        raise SystemExit("BENCH_DATABASE_URL must name a PostgreSQL database")
    name = url.rsplit("/", 1)[1]
    host = url.split("@")[1].split("/")[0].split(":")[0]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env = {
            **os.environ, "DATABASE_URL": url, "RUBRICSTUDIO_VAR_DIR": str(tmp),
            "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-not-secret",
            "SECURE": "0", "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "LOG_LEVEL": "WARNING",
        }  # fmt: skip
        env.pop("DEBUG", None)  # served as in production: DEBUG off
        if args.reuse:
            made = {"seed_s": 0}
        else:
            for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
                subprocess.run(["psql", "-h", host, "-U", "postgres", "-qc", sql], check=True)
            made = _child("seed", env, "--scale", str(args.scale))
        config = _child("describe", env)
        print(
            f"# PostgreSQL: {config['prompts']:,} prompts, {config['responses']:,} responses, "
            f"{config['judgments']:,} judgments, {config['rubrics']:,} rubrics"
            + (
                f" (seeded in {made['seed_s']} s, VACUUM ANALYZE and the run's summary "
                f"included {made['total_s']} s; the summary alone, as a worker computes it "
                f"when the run finishes: {made['summary_s']} s)"
                if not args.reuse
                else " (reused)"
            )
        )
        config["skip"] = [p.strip() for p in args.skip.split(",") if p.strip()]
        unknown = set(config["skip"]) - {p for p, _ in PAGES}
        if unknown:
            raise SystemExit(f"--skip: no such page {', '.join(sorted(unknown))}")
        config_path = tmp / "config.json"
        config_path.write_text(json.dumps(config))
        queries = _child("queries", env, "--config", str(config_path), *(
            ["--profile"] if args.profile else []))  # fmt: skip

        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp / "gunicorn.log"
        with open(log, "wb") as log_file:
            server = subprocess.Popen(
                [str(Path(sys.executable).parent / "gunicorn"), "rubricstudio.wsgi:application",
                 "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
                 "--timeout", str(args.timeout)],
                cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            _wait_until_up(base, server, log)
            config["owner"] = [_sign_in(base, "bench-owner") for _ in range(OWNER_SESSIONS)]
            config["reviewers"] = [
                _sign_in(base, f"bench-reviewer-{i:02d}")
                for i in range(min(REVIEWERS - 1, max(1, args.users - OWNER_SESSIONS)))
            ]  # the last reviewer is the query count's
            config["owner_sessions"] = min(OWNER_SESSIONS, args.users)
            config["think"] = args.think
            config["timeout"] = args.timeout + 10
            config_path.write_text(json.dumps(config))
            (tmp / "locustfile.py").write_text(LOCUSTFILE)
            locust = subprocess.run(
                [str(Path(sys.executable).parent / "locust"), "-f", str(tmp / "locustfile.py"),
                 "--headless", "--users", str(args.users), "--spawn-rate", str(args.users),
                 "--run-time", f"{args.run_time}s", "--host", base, "--csv", str(tmp / "locust"),
                 "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "30"],
                cwd=tmp, env={**env, "BENCH_PAGES_CONFIG": str(config_path)},
                capture_output=True, text=True,
            )  # fmt: skip
            if not (tmp / "locust_stats.csv").exists():
                raise SystemExit(f"locust failed:\n{locust.stderr[-4000:]}")
            stats = _locust_stats(tmp / "locust")
        finally:
            server.terminate()
            server.wait(timeout=60)

    print(
        f"# locust: {args.users} users ({OWNER_SESSIONS} owner sessions, the rest reviewers), "
        f"{args.think[0]:g}-{args.think[1]:g} s between pages, {args.run_time} s; gunicorn "
        f"{args.workers} workers, DEBUG off; queries and alone ms: one request through the test "
        "client with nothing else running (warmed up first, but for the review pages)"
    )
    print(
        f"{'page':<22} {'requests':>8} {'fails':>5} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'queries':>7} {'alone ms':>8} {'goal p95':>9} {'ratio':>6}"
    )
    missed = []
    for page, _ in PAGES:
        if page in config["skip"]:
            print(f"{page:<22} {'skipped':>8}")
            continue
        s = stats.get(page, {"requests": 0, "failures": 0, "p50": 0, "p95": 0, "p99": 0})
        q = queries.get(page, {}).get("queries", "-")
        alone = queries.get(page, {}).get("ms")
        alone_ms = f"{alone:.0f}" if alone is not None else "-"
        ratio = s["p95"] / GOAL_MS
        if ratio >= 1 or not s["requests"]:
            missed.append(page)
        print(
            f"{page:<22} {s['requests']:>8} {s['failures']:>5} {s['p50']:>7.0f} {s['p95']:>7.0f} "
            f"{s['p99']:>7.0f} {q:>7} {alone_ms:>8} {'< ' + format(GOAL_MS, '.0f') + ' ms':>9} "
            f"{ratio:>6.2f}"
        )
    bad = {p: q["status"] for p, q in queries.items() if q["status"] not in (200, 302)}
    if bad:
        print(f"# the query count's requests answered {bad}")
    measured = len(PAGES) - len(config["skip"])
    print(f"# {measured - len(missed)} of {measured} pages measured meet the goal"
          + (f"; missed: {', '.join(missed)}" if missed else ""))  # fmt: skip
    if args.profile:
        for page, q in queries.items():
            print(f"\n## {page}: {q['queries']} queries, {q['ms']:.0f} ms in one request")
            for ms, sql in q["slowest"]:
                print(f"  {ms:8.1f} ms  {sql}")


if __name__ == "__main__":
    main()
