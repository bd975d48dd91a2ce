"""Export throughput and memory: every dataset kind in every format, written by the export
code (``rows.prepare`` and ``writers.write_export``), each in its own child process whose
peak RSS is read from /proc (VmHWM, reset before each repeat).

The goal (issue 19): at least 50,000 rows/s and a peak RSS under 500 MB for every kind and
format, at 1M rows for the kinds with a row per judgment.

Setup (not timed), sized by ``--prompts`` (default 20,000): per prompt 5 responses, its own
rubric of 5 criteria beside a project-wide rubric of 10 (15 criteria a prompt), HealthBench-
like metadata and a reference answer, 5 dataset preference labels; a finished
per-criterion run whose chunks hold 1M units (each response x the 10 project-wide
criteria) with their 1M judgments; a finished pairwise run of 960k judgments (all 10 pairs
of a prompt's responses, both orders, 2 samples, a third for the first response's pairs),
each judge shown the 10 project-wide criteria; a finished judge probe with one perturbed
copy of each response (100k, the five kinds in turn). The big tables are filled by SQL
inside PostgreSQL (INSERT ... SELECT), so the setup takes about a minute.

Rows per kind at the default size: judge_sft 1,000,000, pairwise_sft 960,000 (one per
judgment); preferences 100,000 and augmented_preferences 100,000 (one per label or copy);
rubric_sft 120,000 (a row per prompt and one per dataset label); rl_verl, rl_healthbench,
rl_rar and rl_trl_grpo 20,000 (one per prompt: a prompt's rows are bounded by its rubrics,
not by the judgments).

    python benchmarks/bench_export.py [--prompts 20000] [--repeats 3] [--only KIND[/FORMAT],...]
                                      [--reuse]

Needs PostgreSQL: BENCH_DATABASE_URL, a scratch database that is dropped and created again
(default postgres://postgres@127.0.0.1:5432/bench_rs_export, its own so that other
benchmarks do not drop it under this one; ``--reuse`` measures the database the last run set
up, without setting it up again). Prints, for each kind and format, the rows, the
median seconds and rows/s of the repeats, the peak RSS (the largest of the repeats) and the
ratio of each to its goal (rows/s over 50k: at least 1 is met; RSS over 500 MB: under 1 is
met), and where the time goes on the first 20,000 rows: the seconds to the first row, the
rows after it built alone (read and made into rows) and all of them written alone (checked,
encoded, written), each as rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, fresh_database_env

GOAL_RATE = 50_000  # rows/s
GOAL_RSS = 500  # MB
SAMPLE = 20_000  # rows built, then written, on their own: where the time goes

SETUP = r"""
import json, os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rubricstudio.settings")
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.db import connection
from django.utils import timezone
from annotation.projects import services as project_services
from annotation.rubrics import services as rubric_services
from annotation.prompts.models import PreferenceLabel, Prompt, Response
from annotation.rubrics.models import Criterion, Rubric, RubricVersion
from annotation.rubrics.services import CriterionInput
from scoring.probes.models import Probe, ProbeVariant
from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment

assert connection.vendor == "postgresql", "the export benchmark needs PostgreSQL"
started = time.perf_counter()
prompts = int(sys.argv[1])
from django.contrib.auth import get_user_model
user = get_user_model().objects.create_user("bench", is_staff=True)
project = project_services.project_create(name="bench", slug="bench", owner=user)
rubric = rubric_services.rubric_create(
    project=project, title="Every answer", author=None,
    criteria=[CriterionInput(text=f"States fact number {i} about the condition, with its source", points=i % 5 + 1,
                             tags=["axis:accuracy"] if i % 2 else [], category="important" if i % 3 else "")
              for i in range(10)],
)
criteria = [{"key": str(c.key), "text": c.text, "points": c.points, "category": c.category, "tags": c.tags,
             "version": c.version_id} for c in rubric.current_version.criteria.order_by("position")]
text = "A response of about three hundred characters. " * 6
Prompt.objects.bulk_create(
    (Prompt(project=project, external_id=f"p{p}",
            messages=[{"role": "system", "content": "You are a careful medical assistant."},
                      {"role": "user", "content": f"Question {p}: what should I do about symptom {p}?"}],
            reference_answer=f"See a doctor about symptom {p} if it lasts.",
            metadata={"example_tags": ["theme:emergency", f"cluster:{p % 7}"], "source": "healthbench"},
            search_text=f"Question {p}") for p in range(prompts)), batch_size=5000)
ids = list(Prompt.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
# Each prompt's own rubric of 5 criteria (as a HealthBench import makes them).
own = Rubric.objects.bulk_create(
    (Rubric(project=project, prompt_id=pid, title=f"Rubric {pid}", status="approved") for pid in ids), batch_size=5000)
versions = RubricVersion.objects.bulk_create(
    (RubricVersion(rubric=r, number=1) for r in own), batch_size=5000)
for batch in range(0, len(own), 5000):
    for r, v in zip(own[batch:batch + 5000], versions[batch:batch + 5000]):
        r.current_version_id = r.approved_version_id = v.pk
    Rubric.objects.bulk_update(own[batch:batch + 5000], ["current_version", "approved_version"])
Criterion.objects.bulk_create(
    (Criterion(version=v, position=i, text=f"Mentions point {i} of the answer to question {n}, in plain words",
               points=(-3 if i == 4 else i + 2), category=("pitfall" if i == 4 else "essential"),
               tags=["level:example", f"axis:{i}"])
     for n, v in enumerate(versions) for i in range(5)), batch_size=10000)
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

table = {m: m._meta.db_table for m in (Judgment, Run, RunChunk, RunJudgment, Response, Prompt, ProbeVariant)}

def insert(model, values, source, params=()):
    # INSERT INTO the model's table every concrete column but the id, from ``source``.
    columns = [f.column for f in model._meta.concrete_fields if not f.primary_key]
    missing = set(columns) - values.keys()
    assert not missing, missing
    quoted = ", ".join('"' + c + '"' for c in columns)
    sql = (f"INSERT INTO {model._meta.db_table} ({quoted}) "
           f"SELECT {', '.join(values[c] for c in columns)} {source}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)

now = timezone.now()
def run(mode, total, template):
    return Run.objects.create(project=project, mode=mode, status="done", model="fake-judge",
                              template_version=template, total=total, done=total, started_at=now, finished_at=now)

JUDGMENT = {"sample": "0", "model": "'fake-judge'", "probability": "NULL", "rating": "NULL",
            "explanation": "'Because the response says so, in its second paragraph.'", "error": "''",
            "calls": "1", "prompt_tokens": "900", "completion_tokens": "40", "cached_tokens": "0", "cost": "0",
            "latency": "0.5", "created_at": "now()", "other_id": "NULL", "winner": "''", "detail": "'{}'::jsonb",
            "met": "NULL", "criterion_key": "NULL"}
CHUNK = {"status": "'done'", "attempts": "1", "claimed_at": "NULL", "retry": "false"}

# Per criterion: each response x the 10 project-wide criteria, 1,000 units a chunk.
per = run("per_criterion", len(responses) * 10, "judge-criterion-v1")
insert(RunChunk, {**CHUNK, "run_id": "%s", "index": "m / 1000", "units": "jsonb_agg(unit ORDER BY m)"}, f'''
    FROM (SELECT (row_number() OVER (ORDER BY r.id, c.n) - 1) AS m,
                 jsonb_build_object('r', r.id, 's', 0, 'crit', jsonb_build_array(c.value),
                                    'k', md5(r.id || ':' || c.n) || md5(c.n || ':' || r.id)) AS unit
          FROM {table[Response]} r CROSS JOIN jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS c(value, n)
          WHERE r.source LIKE 'model-%%') AS u
    GROUP BY m / 1000''', [per.pk, json.dumps(criteria)])
insert(Judgment, {**JUDGMENT, "key": "u.value->>'k'", "mode": "'per_criterion'", "response_id": "(u.value->>'r')::bigint",
                  "criterion_key": "(u.value->'crit'->0->>'key')::uuid", "template_version": "'judge-criterion-v1'",
                  "met": "(c.\"index\" * 1000 + u.n) %% 3 <> 0",
                  "probability": "CASE WHEN u.n %% 2 = 0 THEN 0.75 ELSE NULL END", "created_by_run_id": "c.run_id"},
       f"FROM {table[RunChunk]} c CROSS JOIN LATERAL jsonb_array_elements(c.units) WITH ORDINALITY AS u(value, n) WHERE c.run_id = %s",
       [per.pk])
insert(RunJudgment, {"run_id": "%s", "judgment_id": "id", "reused": "false"},
       f"FROM {table[Judgment]} WHERE created_by_run_id = %s", [per.pk, per.pk])

# Pairwise: every pair of a prompt's 5 responses in both orders, samples 0 and 1, and 2 for
# the pairs of its first response; each judge shown the 10 project-wide criteria.
pair = run("pairwise", 0, "judge-pairwise-v1")
insert(RunChunk, {**CHUNK, "run_id": "%s", "index": "m / 500", "units": "jsonb_agg(unit ORDER BY m)"}, f'''
    FROM (SELECT (row_number() OVER (ORDER BY a.prompt_id, a.i, b.i, s, o) - 1) AS m,
                 jsonb_build_object('r', CASE o WHEN 'ab' THEN a.id ELSE b.id END,
                                    'o', CASE o WHEN 'ab' THEN b.id ELSE a.id END,
                                    'pair', jsonb_build_array(a.id, b.id), 'order', o, 's', s, 'crit', %s::jsonb,
                                    'k', md5(a.id || ':' || b.id || o || s) || md5(s || o || b.id || ':' || a.id)) AS unit
          FROM (SELECT id, prompt_id, row_number() OVER (PARTITION BY prompt_id ORDER BY id) AS i
                FROM {table[Response]} WHERE source LIKE 'model-%%') a
          JOIN (SELECT id, prompt_id, row_number() OVER (PARTITION BY prompt_id ORDER BY id) AS i
                FROM {table[Response]} WHERE source LIKE 'model-%%') b ON b.prompt_id = a.prompt_id AND b.i > a.i
          CROSS JOIN (VALUES ('ab'), ('ba')) AS orders(o)
          CROSS JOIN generate_series(0, 2) AS s
          WHERE s < 2 OR a.i = 1) AS u
    GROUP BY m / 500''', [pair.pk, json.dumps(criteria)])
verdicts = ["A", "B", "tie"]
insert(Judgment, {**JUDGMENT, "key": "u.value->>'k'", "mode": "'pairwise'", "response_id": "(u.value->>'r')::bigint",
                  "other_id": "(u.value->>'o')::bigint", "sample": "(u.value->>'s')::int",
                  "template_version": "'judge-pairwise-v1'", "created_by_run_id": "c.run_id",
                  "winner": "(ARRAY['A', 'B', 'tie'])[1 + u.n %% 3]",
                  "detail": "jsonb_build_object('order', u.value->'order', 'pair', u.value->'pair', 'criteria', %s::jsonb)"},
       f"FROM {table[RunChunk]} c CROSS JOIN LATERAL jsonb_array_elements(c.units) WITH ORDINALITY AS u(value, n) WHERE c.run_id = %s",
       [json.dumps({str(i): verdicts[i % 3] for i in range(1, 11)}), pair.pk])
insert(RunJudgment, {"run_id": "%s", "judgment_id": "id", "reused": "false"},
       f"FROM {table[Judgment]} WHERE created_by_run_id = %s", [pair.pk, pair.pk])
Run.objects.filter(pk=pair.pk).update(total=RunJudgment.objects.filter(run=pair).count(),
                                      done=RunJudgment.objects.filter(run=pair).count())

# A finished judge probe: one perturbed copy of every response, the five kinds in turn.
probe_run = run("per_criterion", 0, "judge-criterion-v1")
probe = Probe.objects.create(project=project, run=probe_run, kinds=["padding", "reformat", "flattery", "injection", "causal"],
                             sample=len(responses), phase="done")
kinds = "(ARRAY['padding', 'reformat', 'flattery', 'injection', 'causal'])[1 + r.id %% 5]"
insert(Response, {"prompt_id": "r.prompt_id", "source": f"'probe:' || {kinds}", "content": "r.content || ' Great question!'",
                  "content_hash": "'probe:' || r.id", "metadata": "jsonb_build_object('original', r.id)", "created_at": "now()"},
       f"FROM {table[Response]} r WHERE r.source LIKE 'model-%%'")
insert(ProbeVariant, {"probe_id": "%s", "original_id": "o.id", "variant_id": "v.id", "kind": "substr(v.source, 7)",
                      "detail": f"CASE WHEN v.source = 'probe:causal' THEN jsonb_build_object('criterion', %s::text, 'text', %s::text, 'points', 3, 'direction', CASE WHEN o.id %% 2 = 0 THEN 'remove' ELSE 'add' END) ELSE '{{}}'::jsonb END",
                      "error": "''", "flips": "o.id %% 3", "compared": "10",
                      "target_flipped": "CASE WHEN v.source = 'probe:causal' THEN o.id %% 4 <> 0 ELSE NULL END"},
       f"FROM {table[Response]} v JOIN {table[Response]} o ON o.id = (v.metadata->>'original')::bigint WHERE v.source LIKE 'probe:%%'",
       [probe.pk, criteria[2]["key"], criteria[2]["text"]])

with connection.cursor() as cursor:  # planner statistics for the freshly loaded tables
    cursor.execute("VACUUM ANALYZE")
print(json.dumps({"prompts": len(ids), "responses": len(responses), "labels": PreferenceLabel.objects.count(),
                  "judgments": Judgment.objects.filter(mode="per_criterion").count(),
                  "pairwise": Judgment.objects.filter(mode="pairwise").count(),
                  "variants": ProbeVariant.objects.count(), "seconds": time.perf_counter() - started}))
"""

DESCRIBE = r"""
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rubricstudio.settings")
import django
django.setup()
from annotation.prompts.models import PreferenceLabel, Prompt, Response
from scoring.probes.models import ProbeVariant
from scoring.runs.models import Judgment
print(json.dumps({"prompts": Prompt.objects.count(), "responses": Response.objects.filter(source__startswith="model-").count(),
                  "labels": PreferenceLabel.objects.count(),
                  "judgments": Judgment.objects.filter(mode="per_criterion").count(),
                  "pairwise": Judgment.objects.filter(mode="pairwise").count(),
                  "variants": ProbeVariant.objects.count(), "seconds": 0}))
"""

EXPORT = r"""
import gc, json, os, sys, time, tempfile
from pathlib import Path
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rubricstudio.settings")
import django
django.setup()
import pyarrow  # imported by the first export anyway: not counted in its time
from annotation.projects.models import Project
from scoring.datasets import rows
from scoring.datasets.options import ExportOptions
from scoring.datasets.writers import write_export

kind, fmt, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
project = Project.objects.get(slug="bench")
options = ExportOptions(kind=kind, format=fmt, versions="latest", ratios=(0.9, 0.05, 0.05)).checked()

def peak_mb():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024

for _ in range(repeats):
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:  # the peak RSS from now on
        f.write("5")
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        prepared = rows.prepare(project, options)
        files = write_export(Path(out), prepared.rows, prepared.schema, fmt, spread=prepared.spread)
        seconds = time.perf_counter() - started
        size = sum(f.bytes for f in files)
    print(json.dumps({"rows": sum(f.rows for f in files), "seconds": seconds, "peak_rss_mb": peak_mb(),
                      "bytes": size}), flush=True)

# Where the time goes: the first SAMPLE rows built (read from the database and made into
# rows) and then written (checked, encoded, written) on their own; the write rate is what the
# writer alone allows for rows of this kind's shape.
import itertools
started = time.perf_counter()
prepared = rows.prepare(project, options)
sample = list(itertools.islice(prepared.rows, 1))
first = time.perf_counter()
sample += itertools.islice(prepared.rows, int(sys.argv[4]) - 1)
build = time.perf_counter() - first
first -= started
getattr(prepared.rows, "close", lambda: None)()  # a reader thread stops here
with tempfile.TemporaryDirectory() as out:
    started = time.perf_counter()
    write_export(Path(out), iter(sample), prepared.schema, fmt, spread=prepared.spread)
    write = time.perf_counter() - started
print(json.dumps({"sample": len(sample), "first": first, "build": build, "write": write}), flush=True)
"""

KINDS = (
    "rl_verl",
    "rl_healthbench",
    "rl_rar",
    "rl_trl_grpo",
    "preferences",
    "augmented_preferences",
    "rubric_sft",
    "judge_sft",
    "pairwise_sft",
)
FORMATS = ("jsonl", "parquet", "hf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--reuse", action="store_true", help="measure the database a previous run set up"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated KIND or KIND/FORMAT to measure (default: all)"
    )
    args = parser.parse_args()
    os.environ.setdefault(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_rs_export"
    )
    wanted = [w for w in args.only.split(",") if w]
    cases = [
        (kind, fmt)
        for kind in KINDS
        for fmt in FORMATS
        if not wanted or kind in wanted or f"{kind}/{fmt}" in wanted
    ]
    with tempfile.TemporaryDirectory() as tmp:
        if args.reuse:
            env = {**os.environ, "DEBUG": "1", "RUBRICSTUDIO_VAR_DIR": tmp,
                   "DATABASE_URL": os.environ["BENCH_DATABASE_URL"]}  # fmt: skip
        else:
            env = fresh_database_env(Path(tmp))
        env.setdefault("SECRET_KEY", "bench-only-not-secret")
        setup = subprocess.run(
            [sys.executable, "-c", DESCRIBE if args.reuse else SETUP, str(args.prompts)],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if setup.returncode:
            raise SystemExit(setup.stderr[-4000:])
        made = json.loads(setup.stdout.strip().splitlines()[-1])
        print(
            f"# PostgreSQL: {made['prompts']:,} prompts, {made['responses']:,} responses, "
            f"{made['judgments']:,} per-criterion and {made['pairwise']:,} pairwise judgments, "
            f"{made['labels']:,} preference labels, {made['variants']:,} probe copies "
            + ("(reused)\n" if args.reuse else f"(setup {made['seconds']:.0f} s)\n")
            + f"# goal: >= {GOAL_RATE:,} rows/s and < {GOAL_RSS} MB peak RSS; rows/s the median "
            f"of {args.repeats}, RSS the largest; x goal: rows/s over the goal (>= 1 met), RSS "
            f"over the goal (< 1 met)\n"
            "# per-prompt kinds have a row per prompt (rubric_sft: and one per dataset label): "
            "fewer rows than judgments by the data's shape\n"
            f"# where the time goes, on the first {SAMPLE:,} rows: first s = seconds to the first "
            "row (what is read before it), build/s = the next rows read and made alone, write/s = the same rows checked, encoded and written alone (what the "
            "writer allows for rows of this shape; the export overlaps reading with the rest "
            "only for the judge distillation kinds)"
        )
        print(
            f"{'kind':>22} {'format':>7} {'rows':>10} {'seconds':>8} {'rows/s':>9} "
            f"{'x goal':>6} {'RSS MB':>7} {'x goal':>6} {'MiB out':>8} {'first s':>7} {'build/s':>9} "
            f"{'write/s':>9}  met"
        )
        started = time.perf_counter()
        missed = 0
        for kind, fmt in cases:
            out = subprocess.run(
                [sys.executable, "-c", EXPORT, kind, fmt, str(args.repeats), str(SAMPLE)],
                cwd=ROOT, env=env, capture_output=True, text=True,
            )  # fmt: skip
            if out.returncode:
                raise SystemExit(f"{kind} {fmt}:\n{out.stderr[-4000:]}")
            lines = out.stdout.strip().splitlines()
            results = [json.loads(line) for line in lines[-args.repeats - 1 : -1]]
            split = json.loads(lines[-1])
            seconds = statistics.median(r["seconds"] for r in results)
            rate = statistics.median(r["rows"] / r["seconds"] for r in results)
            peak = max(r["peak_rss_mb"] for r in results)
            met = rate >= GOAL_RATE and peak < GOAL_RSS
            missed += not met
            print(
                f"{kind:>22} {fmt:>7} {results[0]['rows']:>10,} {seconds:>8.2f} {rate:>9,.0f} "
                f"{rate / GOAL_RATE:>6.2f} {peak:>7.0f} {peak / GOAL_RSS:>6.2f} "
                f"{results[0]['bytes'] / 2**20:>8.1f} {split['first']:>7.2f} "
                f"{(split['sample'] - 1) / split['build']:>9,.0f} "
                f"{split['sample'] / split['write']:>9,.0f}  {'yes' if met else 'NO'}",
                flush=True,
            )
        print(
            f"# {len(cases) - missed} of {len(cases)} kind x format meet the goal "
            f"(exports {time.perf_counter() - started:.0f} s)"
        )


if __name__ == "__main__":
    main()
