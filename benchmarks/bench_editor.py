"""Rubric editor latency: the prompt page, one edit, and a save, for rubrics of 10, 30
and 60 criteria with 30 saved versions each, through Django's request stack in-process
(no network, no browser). Prints median and 90th-percentile milliseconds and the SQL
queries each request runs; flat query counts and near-flat times show the editor does not
slow down with rubric size or history.

    python benchmarks/bench_editor.py [--sizes 10 30 60] [--repeats 40]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, database_name, fresh_database_env

CHILD = r"""
import os, statistics, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rubricstudio.settings")
import django
django.setup()
from django.conf import settings
settings.ALLOWED_HOSTS = ["*"]
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.contrib.auth import get_user_model
from annotation.projects import services as project_services
from annotation.rubrics import services as rubric_services
from annotation.prompts.models import Prompt
from annotation.rubrics.services import CriterionInput

size, repeats = int(sys.argv[1]), int(sys.argv[2])
user = get_user_model().objects.create_user("bench", password="pw", is_staff=True)
project = project_services.project_create(name="bench", slug=f"bench-{size}", owner=user)
prompt = Prompt.objects.create(
    project=project, external_id="p", messages=[{"role": "user", "content": "Question?"}]
)
words = "dose fever pain risk doctor advise urgent test blood sleep diet".split()
criteria = [
    CriterionInput(
        text=f"Criterion {i}: " + " ".join(words[(i * 7 + j) % len(words)] for j in range(14)),
        points=(i % 9) - 3 or 1,
    )
    for i in range(size)
]
rubric = rubric_services.rubric_create(project=project, prompt=prompt, title="r", criteria=criteria, author=user)
keys = [c.key for c in rubric.current_version.criteria.order_by("position")]
for v in range(2, 31):
    criteria = [CriterionInput(text=c.text, points=c.points + (v if i == v % size else 0), key=keys[i])
                for i, c in enumerate(criteria)]
    rubric_services.rubric_version_create(rubric=rubric, criteria=criteria, author=user)
client = Client()
client.force_login(user)
hx = {"HTTP_HX_REQUEST": "true"}
page = reverse("annotation:prompt_detail", args=[project.slug, prompt.pk])
edit = reverse("annotation:rubric_draft", args=[project.slug, rubric.pk, "update"])
save = reverse("annotation:rubric_save", args=[project.slug, rubric.pk])

def timed(fn):
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        response = fn()
        elapsed = time.perf_counter() - start
    assert response.status_code == 200, response.status_code
    return elapsed * 1000, len(queries)

results = {"page": [], "edit": [], "save": []}
for i in range(repeats):
    results["page"].append(timed(lambda: client.get(page)))
    results["edit"].append(timed(lambda: client.post(edit, {"key": str(keys[i % size]), "points": str(50 + i)}, **hx)))
    results["save"].append(timed(lambda: client.post(save, {"note": f"n{i}"}, **hx)))
for name, rows in results.items():
    ms = sorted(r[0] for r in rows[3:])  # the first requests warm caches
    print(name, statistics.median(ms), ms[int(len(ms) * 0.9) - 1], max(r[1] for r in rows))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 60])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    print(f"rubric editor benchmark ({database_name()}); 30 versions per rubric;")
    print(f"median and p90 of {args.repeats - 3} requests after 3 warm-up ones, in-process")
    print(f"{'criteria':>8} {'request':>8} {'median ms':>10} {'p90 ms':>8} {'queries':>8}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for size in args.sizes:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(size), str(args.repeats)],
                cwd=ROOT,
                env=fresh_database_env(tmp),
                capture_output=True,
                text=True,
            )
            if out.returncode:
                raise SystemExit(out.stderr)
            for line in out.stdout.splitlines()[-3:]:
                name, median, p90, queries = line.split()
                print(f"{size:>8} {name:>8} {float(median):>10.1f} {float(p90):>8.1f} {queries:>8}")


if __name__ == "__main__":
    main()
