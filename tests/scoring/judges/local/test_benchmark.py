"""The local judge benchmark runs on CPU in its small mode and prints every figure; its
equivalence figure (shared-prefix against naive, fp32) stays within the tolerance. Its
speeds are reported, never asserted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]


def test_local_judge_benchmark_small_mode(tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_local_judge.py", "--size", "small", "--responses", "4",
         "--criteria", "3", "--repeats", "1", "--generate-sample", "2", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout
    for figure in ("scores/s", "prefill tokens/s", "MFU", "matmul throughput",
                   "speedup over naive batching", "speedup over generate()"):  # fmt: skip
        assert figure in printed, printed
    figures = json.loads(out.read_text())
    assert figures["pairs"] == 12
    assert figures["max_gap"] < 1e-4
    assert re.search(r"largest \|P_shared - P_naive\|: \S+", printed)
    for path in ("naive", "shared"):
        assert figures[path]["scores_per_s"] > 0 and figures[path]["mfu"] > 0
