"""Rubric analytics at scale: the worker's computation of a run with 100k judgments, and the
Analytics page that reads what it stored.

Setup (not timed): 2,000 prompts × 5 responses from 5 sources, a project-wide rubric of 10
criteria, a finished per-criterion run of 100,000 judgments (two criteria saturated, two
redundant, the rest met more often by the better sources), 10,000 dataset preference labels.

    python benchmarks/bench_insights.py [--prompts 2000] [--repeats 3]

Prints the computation's seconds (median of the repeats; goal < 10 s in the worker) and the
page's render time (median and p95 of 20 requests; goal < 200 ms) with its query count
(goal: bounded, the same whatever the run's size). PostgreSQL with BENCH_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/bench_rs), SQLite without it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, database_name, fresh_database_env

SETUP = r"""
import hashlib, json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rubricstudio.settings")
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.utils import timezone
from annotation.projects import services as project_services
from annotation.rubrics import services as rubric_services
from annotation.prompts.models import PreferenceLabel, Prompt, Response
from annotation.rubrics.services import CriterionInput
from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment

prompts = int(sys.argv[1])
from django.contrib.auth import get_user_model
user = get_user_model().objects.create_user("bench", is_staff=True)
project = project_services.project_create(name="bench", slug="bench", owner=user)
rubric = rubric_services.rubric_create(
    project=project, title="Every answer", author=None,
    criteria=[CriterionInput(text=f"States fact number {i} about the condition, with its source", points=(i % 5 + 1) * (-1 if i == 9 else 1)) for i in range(10)],
)
criteria = [{"key": str(c.key), "text": c.text, "points": c.points, "category": c.category, "tags": [], "version": c.version_id}
            for c in rubric.current_version.criteria.order_by("position")]
Prompt.objects.bulk_create(
    (Prompt(project=project, external_id=f"p{p}", messages=[{"role": "user", "content": f"Question {p}?"}],
            search_text=f"Question {p}") for p in range(prompts)), batch_size=5000)
ids = list(Prompt.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
Response.objects.bulk_create(
    (Response(prompt_id=pid, source=f"model-{r}", content="An answer. " * (10 + 10 * r) + f"({pid}.{r})", content_hash=f"{pid}.{r}")
     for pid in ids for r in range(5)), batch_size=5000)
responses = list(Response.objects.filter(prompt__project=project).order_by("pk").values_list("pk", "prompt_id", "source"))
by_prompt = {}
for rid, pid, _ in responses:
    by_prompt.setdefault(pid, []).append(rid)
PreferenceLabel.objects.bulk_create(
    (PreferenceLabel(prompt_id=pid, chosen_id=rs[(i + 1) % 5] if i < 4 else rs[4], rejected_id=rs[i] if i < 4 else rs[0]) for pid, rs in by_prompt.items() for i in range(5)),
    batch_size=5000)
run = Run.objects.create(project=project, mode="per_criterion", status="done", model="fake-judge",
                         template_version="judge-criterion-v1", total=len(responses) * 10, done=len(responses) * 10,
                         started_at=timezone.now(), finished_at=timezone.now())
def key(rid, i):
    return hashlib.sha256(f"{rid}:{i}".encode()).hexdigest()
def met(rid, source, i):
    level = int(source.rsplit("-", 1)[1])  # model-4 is the best
    if i == 0: return True               # saturated: always met
    if i == 9: return False              # a pitfall never met: saturated
    if i == 2: return met(rid, source, 1)  # redundant with criterion 1
    return (rid * 7919 + i * 104729) % 10 < 3 + level
units = [{"r": rid, "s": 0, "crit": [c], "k": key(rid, i)} for rid, _, _ in responses for i, c in enumerate(criteria)]
verdicts = [met(rid, source, i) for rid, _, source in responses for i in range(len(criteria))]
RunChunk.objects.bulk_create(
    (RunChunk(run=run, index=n, status="done", units=units[start:start + 1000]) for n, start in enumerate(range(0, len(units), 1000))),
    batch_size=100)
for start in range(0, len(units), 20000):
    made = Judgment.objects.bulk_create(
        [Judgment(key=u["k"], mode="per_criterion", response_id=u["r"], criterion_key=u["crit"][0]["key"], model="fake-judge",
                  template_version="judge-criterion-v1", met=verdicts[start + n], explanation="Because the response says so.",
                  created_by_run=run) for n, u in enumerate(units[start:start + 20000])])
    RunJudgment.objects.bulk_create([RunJudgment(run=run, judgment=j) for j in made])
from django.db import connection
if connection.vendor == "postgresql":
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
print(json.dumps({"judgments": len(units), "labels": PreferenceLabel.objects.count(), "run": run.pk}))
"""

COMPUTE = r"""
import json, os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rubricstudio.settings")
import django
django.setup()
from scoring.insights.services import insights_compute
started = time.perf_counter()
insights = insights_compute(run_id=int(sys.argv[1]))
seconds = time.perf_counter() - started
assert insights is not None and not insights.error, insights and insights.error
figures = insights.figures
flags = sum(1 for c in figures["criteria"] if c["flags"])
print(json.dumps({"seconds": seconds, "criteria": len(figures["criteria"]), "flagged": flags,
                  "redundant": len(figures["redundant"]), "board": len(figures["leaderboard"]["labels"]["board"])}))
"""

PAGE = r"""
import json, os, statistics, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rubricstudio.settings")
import django
django.setup()
from django.conf import settings
settings.ALLOWED_HOSTS = ["*"]
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
client = Client()
client.force_login(get_user_model().objects.get(username="bench"))
url = f"/p/bench/analytics/?run={sys.argv[1]}"
assert client.get(url).status_code == 200
times = []
for _ in range(20):
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        answer = client.get(url)
    times.append(time.perf_counter() - started)
    assert answer.status_code == 200 and b"criteria-table" in answer.content
times.sort()
print(json.dumps({"median_ms": statistics.median(times) * 1000, "p95_ms": times[18] * 1000, "queries": len(queries)}))
"""


def _child(script: str, *args: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(out.stderr[-4000:])
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_rs")
    with tempfile.TemporaryDirectory() as tmp:
        env = fresh_database_env(Path(tmp))
        env.setdefault("SECRET_KEY", "bench-only-not-secret")
        made = _child(SETUP, str(args.prompts), env=env)
        run = str(int(made["run"]))
        print(
            f"# {database_name()}: {made['judgments']:,.0f} judgments, {made['labels']:,.0f} preference labels"
        )
        computed = [_child(COMPUTE, run, env=env) for _ in range(args.repeats)]
        seconds = sorted(c["seconds"] for c in computed)[len(computed) // 2]
        last = computed[-1]
        print(
            f"analytics of the run: {seconds:6.2f} s (median of {args.repeats}; goal < 10 s)  "
            f"{last['criteria']:.0f} criteria, {last['flagged']:.0f} flagged, "
            f"{last['redundant']:.0f} redundant pairs, {last['board']:.0f} sources ranked"
        )
        small = _child(PAGE, run, env=env)
        print(
            f"Analytics page: {small['median_ms']:6.1f} ms median, {small['p95_ms']:6.1f} ms p95 "
            f"(20 requests; goal < 200 ms), {small['queries']:.0f} queries"
        )


if __name__ == "__main__":
    main()
