"""Loading a local judge from disk: a Hugging Face causal LM directory (config, weights,
tokenizer), never from a hub. One model per worker process, loaded on first use and kept
for the tasks that follow."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LocalSpec", "judge_for", "load_judge", "resolve_device", "resolve_dtype"]


@dataclass(frozen=True)
class LocalSpec:
    """What decides which model a worker holds."""

    path: str
    dtype: str = "auto"  # auto | bfloat16 | float16 | float32
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    batch_tokens: int = 16384


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this worker has no CUDA device")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this worker has {torch.cuda.device_count()} GPUs")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device {device!r}: use auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[
            dtype
        ]
    except KeyError:
        raise ValueError(f"dtype {dtype!r}: use auto, bfloat16, float16 or float32") from None


def load_judge(spec: LocalSpec) -> Any:
    """The LocalJudge for ``spec``: model and tokenizer read from ``spec.path`` only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = Path(spec.path)
    if not path.is_absolute():
        raise ValueError(f"model path {spec.path!r} is not absolute")
    if not (path / "config.json").is_file():
        raise ValueError(f"{spec.path}: no config.json there (not a model directory)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scoring.judges.local.judge import LocalJudge

    device = resolve_device(spec.device)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        path,
        local_files_only=True,
        dtype=resolve_dtype(spec.dtype, device),
    ).to(device)  # type: ignore[arg-type]  # transformers' @wraps(Module.to) types it unbound
    return LocalJudge(model, tokenizer, batch_tokens=spec.batch_tokens)


_held: dict[str, Any] = {}
_lock = threading.Lock()


def judge_for(spec: LocalSpec) -> Any:
    """This process's judge for ``spec``, loaded on first use. Asking for another model
    lets the previous one go first (one model's weights in memory at a time)."""
    with _lock:
        if _held.get("spec") != spec:
            _held.clear()
            _release_memory()
            _held["judge"] = load_judge(spec)
            _held["spec"] = spec
        return _held["judge"]


def _release_memory() -> None:
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
