"""The layering from the design: scoring/engine is plain Python, annotation never imports
scoring, and the web process does not pull in torch or transformers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_engine_has_no_django_imports():
    for path, names in imported_modules(ROOT / "scoring" / "engine").items():
        bad = {n for n in names if n.split(".")[0] in {"django", "rest_framework", "annotation"}}
        assert not bad, f"{path} imports {bad}"


def test_annotation_does_not_import_scoring():
    for path, names in imported_modules(ROOT / "annotation").items():
        assert not {n for n in names if n.split(".")[0] == "scoring"}, path


def test_web_process_does_not_import_torch():
    code = (
        "import os, sys; os.environ['DEBUG']='1'; os.environ['DJANGO_SETTINGS_MODULE']='rubricstudio.settings';"
        "import django; django.setup(); import rubricstudio.urls, annotation.api, annotation.views;"
        # what the web process reaches of embeddings: the duplicates panel and its task
        "import scoring.tasks, scoring.views_duplicates, scoring.local.embeddings;"
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
