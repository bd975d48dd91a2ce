"""The layering from the design (import-linter contracts in pyproject.toml): scoring/engine
is plain Python, annotation never imports scoring, each app's nouns import only those below
them; and the web process does not pull in torch or transformers."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_the_layering_contracts_hold():
    """annotation never imports scoring (bar the engine's agreement maths), the engine and
    the fake LLM import no Django or app code, and each app's nouns import only those below
    them: the contracts in pyproject.toml."""
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("annotation/prompts/probe.py", "import scoring.runs.models", "never imports scoring"),
        ("scoring/engine/probe.py", "import django.db", "plain Python"),
        ("annotation/projects/probe.py", "import annotation.reviews.models", "annotation's nouns"),
        ("scoring/judges/probe.py", "import scoring.runs.services", "scoring's nouns"),
    ],
)
def test_a_broken_rule_fails_the_check(tmp_path, module, line, contract):
    for name in ("annotation", "scoring", "fakellm", "rubricstudio"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / module).write_text(line + "\n")
    out = lint_imports(tmp_path)
    assert out.returncode != 0
    report = " ".join(out.stdout.split())  # contract names wrap
    assert re.search(re.escape(contract) + r"(?:(?!KEPT|BROKEN).)*BROKEN", report), out.stdout


def test_web_process_does_not_import_torch():
    code = (
        "import os, sys; os.environ['DEBUG']='1'; os.environ['DJANGO_SETTINGS_MODULE']='rubricstudio.settings';"
        "import django; django.setup(); import rubricstudio.urls, annotation.projects.api, annotation.rubrics.views;"
        # what the web process reaches of embeddings: the duplicates panel and its task
        "import scoring.analytics.tasks, scoring.runs.tasks, scoring.coauthoring.tasks,"
        " scoring.datasets.tasks, scoring.analytics.views, scoring.judges.embeddings;"
        "print(sorted(m for m in ('torch','transformers','sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_secret_key_is_required_without_debug(tmp_path):
    code = "import os; os.environ['DJANGO_SETTINGS_MODULE']='rubricstudio.settings'; import django; django.setup()"
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "0", "RUBRICSTUDIO_VAR_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert out.returncode != 0 and "SECRET_KEY must be set" in out.stderr
