"""Export throughput and memory: 1M judgment rows (judge distillation) and 100k preference
pairs, written as Parquet and JSONL by the export code, in a child process whose peak RSS
is read from /proc (VmHWM).

Setup (not timed): 20,000 prompts × 5 responses, a project-wide rubric of 10 criteria, a
finished per-criterion run whose chunks hold the 1M units, 1M judgments linked to it, and
100k dataset preference labels.

    python benchmarks/bench_export.py [--prompts 20000] [--repeats 3]

Needs PostgreSQL (BENCH_DATABASE_URL, a scratch database that is recreated; default
postgres://postgres@127.0.0.1:5432/bench_rs): rows are streamed with server-side cursors
there. Prints rows/s (median of the repeats) and the peak RSS of each export.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
    criteria=[CriterionInput(text=f"States fact number {i} about the condition, with its source", points=i % 5 + 1) for i in range(10)],
)
criteria = [{"key": str(c.key), "text": c.text, "points": c.points, "category": c.category, "tags": [], "version": c.version_id}
            for c in rubric.current_version.criteria.order_by("position")]
text = "A response of about three hundred characters. " * 6
Prompt.objects.bulk_create(
    (Prompt(project=project, external_id=f"p{p}", messages=[{"role": "user", "content": f"Question {p}: what should I do about symptom {p}?"}],
            search_text=f"Question {p}") for p in range(prompts)), batch_size=5000)
ids = list(Prompt.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
Response.objects.bulk_create(
    (Response(prompt_id=pid, source=f"model-{r}", content=f"{text} ({pid}.{r})", content_hash=f"{pid}.{r}")
     for pid in ids for r in range(5)), batch_size=5000)
responses = list(Response.objects.filter(prompt__project=project).order_by("pk").values_list("pk", "prompt_id"))
by_prompt = {}
for rid, pid in responses:
    by_prompt.setdefault(pid, []).append(rid)
PreferenceLabel.objects.bulk_create(
    (PreferenceLabel(prompt_id=pid, chosen_id=rs[i], rejected_id=rs[(i + 1) % 5]) for pid, rs in by_prompt.items() for i in range(5)),
    batch_size=5000)
run = Run.objects.create(project=project, mode="per_criterion", status="done", model="fake-judge",
                         template_version="judge-criterion-v1", total=len(responses) * 10, done=len(responses) * 10,
                         started_at=timezone.now(), finished_at=timezone.now())
def key(rid, i):
    return hashlib.sha256(f"{rid}:{i}".encode()).hexdigest()
units = [{"r": rid, "s": 0, "crit": [c], "k": key(rid, i)} for rid, _ in responses for i, c in enumerate(criteria)]
RunChunk.objects.bulk_create(
    (RunChunk(run=run, index=n, status="done", units=units[start:start + 1000]) for n, start in enumerate(range(0, len(units), 1000))),
    batch_size=100)
for start in range(0, len(units), 20000):
    made = Judgment.objects.bulk_create(
        [Judgment(key=u["k"], mode="per_criterion", response_id=u["r"], criterion_key=u["crit"][0]["key"], model="fake-judge",
                  template_version="judge-criterion-v1", met=(n % 3 != 0), explanation="Because the response says so.",
                  created_by_run=run) for n, u in enumerate(units[start:start + 20000])])
    RunJudgment.objects.bulk_create([RunJudgment(run=run, judgment=j) for j in made])
from django.db import connection
if connection.vendor == "postgresql":  # planner statistics for the freshly loaded tables
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
print(json.dumps({"judgments": len(units), "labels": PreferenceLabel.objects.count()}))
"""

EXPORT = r"""
import json, os, sys, time, tempfile
from pathlib import Path
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rubricstudio.settings")
import django
django.setup()
from annotation.projects.models import Project
from scoring.datasets import rows
from scoring.datasets.options import ExportOptions
from scoring.datasets.writers import write_export

kind, fmt = sys.argv[1], sys.argv[2]
project = Project.objects.get(slug="bench")
options = ExportOptions(kind=kind, format=fmt, versions="latest", ratios=(0.9, 0.05, 0.05)).checked()
with tempfile.TemporaryDirectory() as out:
    started = time.perf_counter()
    prepared = rows.prepare(project, options)
    files = write_export(Path(out), prepared.rows, prepared.schema, fmt, spread=prepared.spread)
    seconds = time.perf_counter() - started
    size = sum(f.bytes for f in files)
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({"rows": sum(f.rows for f in files), "seconds": seconds, "peak_rss_mb": peak, "bytes": size}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_rs")
    with tempfile.TemporaryDirectory() as tmp:
        env = fresh_database_env(Path(tmp))
        env.setdefault("SECRET_KEY", "bench-only-not-secret")
        setup = subprocess.run(
            [sys.executable, "-c", SETUP, str(args.prompts)], cwd=ROOT, env=env,
            capture_output=True, text=True,
        )  # fmt: skip
        if setup.returncode:
            raise SystemExit(setup.stderr[-4000:])
        made = json.loads(setup.stdout.strip().splitlines()[-1])
        print(
            f"# {database_name()}: {made['judgments']:,} judgments, {made['labels']:,} preference labels"
        )
        for kind, fmt in (
            ("judge_sft", "parquet"),
            ("judge_sft", "jsonl"),
            ("preferences", "parquet"),
            ("preferences", "jsonl"),
        ):
            results = []
            for _ in range(args.repeats):
                out = subprocess.run(
                    [sys.executable, "-c", EXPORT, kind, fmt], cwd=ROOT, env=env,
                    capture_output=True, text=True,
                )  # fmt: skip
                if out.returncode:
                    raise SystemExit(out.stderr[-4000:])
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            rate = statistics.median(r["rows"] / r["seconds"] for r in results)
            peak = max(r["peak_rss_mb"] for r in results)
            print(
                f"{kind:>12} {fmt:>8}: {results[0]['rows']:>9,} rows  {rate:9,.0f} rows/s (median of "
                f"{args.repeats})  peak RSS {peak:6.0f} MB  {results[0]['bytes'] / 2**20:8.1f} MiB written"
            )


if __name__ == "__main__":
    main()
