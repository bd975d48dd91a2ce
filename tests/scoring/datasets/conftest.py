"""Fixtures of the export tests that load exports as their consumers do."""

from __future__ import annotations

import pytest


@pytest.fixture
def hf_datasets(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """`datasets` offline, its caches under the test's folder."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    return datasets
