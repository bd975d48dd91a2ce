"""Shared by the benchmarks: a fresh database for a child process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fresh_database_env(tmp: Path) -> dict[str, str]:
    """Environment for a child process with an empty database: SQLite in ``tmp``, or the
    scratch PostgreSQL database named by BENCH_DATABASE_URL, dropped and created again."""
    env = {**os.environ, "DEBUG": "1", "RUBRICSTUDIO_VAR_DIR": str(tmp)}
    if os.environ.get("BENCH_DATABASE_URL"):
        url = env["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]
        name = url.rsplit("/", 1)[1]
        host = url.split("@")[1].split("/")[0].split(":")[0]
        for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
            subprocess.run(["psql", "-h", host, "-U", "postgres", "-qc", sql], check=True)
    else:
        env.pop("DATABASE_URL", None)
        (tmp / "rubricstudio.sqlite3").unlink(missing_ok=True)
    return env


def database_name() -> str:
    return "PostgreSQL" if os.environ.get("BENCH_DATABASE_URL") else "SQLite"
