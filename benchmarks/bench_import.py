"""Import throughput and memory: synthetic HealthBench-shaped files of growing size.

Each size runs in a fresh process (so peak RSS is that import's own) against a fresh
database: SQLite in a temporary folder, or the PostgreSQL of DATABASE_URL (a scratch
database named by BENCH_DATABASE_URL is recreated). Prints records/s, criteria/s and peak
RSS; peak RSS staying flat as the file grows shows the import streams.

    python benchmarks/bench_import.py [--sizes 1000 4000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, database_name, fresh_database_env

GOAL_RECORDS = 2000
GOAL_CRITERIA = 25000

CHILD = r"""
import os, resource, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rubricstudio.settings")
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from annotation.projects.models import Project
from annotation.prompts import services as prompt_services
project = Project.objects.create(slug="bench", name="bench")
start = time.perf_counter()
report = prompt_services.data_import(project=project, path=sys.argv[1], fmt="healthbench")
elapsed = time.perf_counter() - start
assert report.ok, report.errors[:3]
print(elapsed, report.prompts_created, report.criteria_created,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def make_file(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    words = [
        "dose",
        "fever",
        "pain",
        "risk",
        "doctor",
        "advise",
        "urgent",
        "test",
        "blood",
        "sleep",
        "diet",
    ]
    with path.open("w") as f:
        for i in range(n):
            text = " ".join(rng.choice(words) for _ in range(60))
            rubric = [
                {
                    "criterion": f"Criterion {j}: "
                    + " ".join(rng.choice(words) for _ in range(20)),
                    "points": rng.choice([-8, -5, 2, 5, 7, 10]),
                    "tags": ["level:example", f"axis:{rng.choice(['accuracy', 'completeness'])}"],
                }
                for j in range(12)
            ]
            row = {
                "prompt_id": f"b{i:08d}",
                "prompt": [{"role": "user", "content": text}],
                "rubrics": rubric,
            }
            f.write(json.dumps(row) + "\n")


def run_once(path: Path, tmp: Path) -> tuple[float, int, int, int]:
    env = fresh_database_env(tmp)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    elapsed, prompts, criteria, rss_kb = out.stdout.split()[-4:]
    return float(elapsed), int(prompts), int(criteria), int(rss_kb)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    db = database_name()
    print(f"import benchmark ({db}); median of {args.repeats} runs; 12 criteria per prompt")
    print(
        f"goal: >= {GOAL_RECORDS:,} records/s and >= {GOAL_CRITERIA:,} criteria/s on PostgreSQL; "
        "SQLite within 3x of that (ratio: the figure over the goal)"
    )
    print(
        f"{'records':>8} {'MB':>6} {'seconds':>8} {'records/s':>10} {'criteria/s':>11} "
        f"{'ratio':>6} {'peak RSS MB':>12}"
    )
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for n in args.sizes:
            path = tmp / f"hb_{n}.jsonl"
            make_file(path, n)
            runs = [run_once(path, tmp) for _ in range(args.repeats)]
            secs = statistics.median(r[0] for r in runs)
            rss = statistics.median(r[3] for r in runs) / 1024
            # SQLite's goal is a third of PostgreSQL's
            scale = 1 if db == "PostgreSQL" else 1 / 3
            ratio = min(n / secs / GOAL_RECORDS, runs[0][2] / secs / GOAL_CRITERIA) / scale
            print(
                f"{n:>8} {path.stat().st_size / 1e6:>6.1f} {secs:>8.2f} {n / secs:>10.0f} "
                f"{runs[0][2] / secs:>11.0f} {ratio:>6.2f} {rss:>12.1f}"
            )


if __name__ == "__main__":
    main()
