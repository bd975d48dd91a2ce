"""The stored embedding vectors of criteria and responses, filed by text hash under the
configured model: read in bulk by the web process, embedded (the missing ones) by a worker;
and diverse responses for the refine action, chosen by those vectors.

Diverse responses for refine (``diverse_responses``) are chosen inside the co-authoring job,
which runs on the ``default`` queue's worker, not on the ``gpu`` queue: that worker embeds
the responses itself (``vectors_for`` loads the model in its own process, on
``EMBEDDING_DEVICE``) when requirements-ml.txt is installed there. Otherwise (as in
docker-compose, whose ``default`` worker image has no torch) the first ``REFINE_RESPONSES``
responses are graded and the proposal's notes say ``"response_choice": "first"``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import numpy as np
from django.conf import settings

from scoring.judges import embeddings
from scoring.judges.embeddings import EmbeddingError, diverse_subset, model_key
from scoring.judges.models import Embedding, text_hash

logger = logging.getLogger(__name__)

REFINE_RESPONSES = 8
REFINE_CANDIDATES = 200  # responses of one prompt considered for the diverse selection
_CHUNK = 500
# Text hashes looked up in one query. Bound parameters, well under SQLite's limit (32,766
# since 3.32) and with psycopg's client-side binding none: reading the stored vectors of a
# report (MAX_PROJECT_CRITERIA + a rubric's 300 criteria) takes at most three queries.
_LOOKUP_CHUNK = 10_000


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _key() -> str:
    return model_key(settings.EMBEDDING_MODEL_PATH)


def _read_vectors(hashes: Iterable[str]) -> tuple[dict[str, int], np.ndarray]:
    """The stored vectors of the text ``hashes`` under the configured model, as one float32
    matrix (a row per hash found) and the row of each hash found; decoded in one go."""
    index: dict[str, int] = {}
    blobs: list[bytes] = []
    dim = 0
    for chunk in _chunks(sorted(set(hashes)), _LOOKUP_CHUNK):
        rows = Embedding.objects.filter(model=_key(), text_hash__in=chunk)
        for h, d, vector in rows.values_list("text_hash", "dim", "vector"):
            blob = bytes(vector)
            dim = dim or d
            if d != dim or len(blob) != 4 * d:
                raise ValueError(
                    f"embedding {h[:12]}: {len(blob) // 4} values of {d} stored, {dim} expected"
                )
            index[h] = len(blobs)
            blobs.append(blob)
    if not blobs:
        return index, np.zeros((0, 0), dtype=np.float32)
    flat = np.frombuffer(b"".join(blobs), dtype="<f4")
    return index, flat.reshape(len(blobs), dim).astype(np.float32)


def _stored_hashes(hashes: Iterable[str]) -> set[str]:
    """Which of the text ``hashes`` have a stored vector (the vectors themselves unread)."""
    found: set[str] = set()
    for chunk in _chunks(sorted(set(hashes)), _LOOKUP_CHUNK):
        rows = Embedding.objects.filter(model=_key(), text_hash__in=chunk)
        found.update(rows.values_list("text_hash", flat=True))
    return found


def stored_vectors(texts: Iterable[str]) -> dict[str, np.ndarray]:
    """The stored vectors of ``texts`` under the configured model, by text hash; texts not
    embedded yet are absent."""
    index, matrix = _read_vectors(text_hash(t) for t in texts)
    return {h: matrix[i] for h, i in index.items()}


def embed_missing(texts: Iterable[str]) -> int:
    """Embed and store the texts that have no vector yet; returns how many were embedded.
    Worker only (loads the model). Safe to run twice at once: the unique constraint keeps
    one vector per (model, text)."""
    unique = {text_hash(t): t for t in texts}
    have = _stored_hashes(unique)
    missing = [(h, t) for h, t in unique.items() if h not in have]
    for chunk in _chunks(missing, 256):
        vectors = embeddings.embed(  # loads the model (torch) on its first call, not at import
            [t for _, t in chunk],
            path=settings.EMBEDDING_MODEL_PATH,
            device=settings.EMBEDDING_DEVICE,
        )
        Embedding.objects.bulk_create(
            [
                Embedding(model=_key(), text_hash=h, dim=v.shape[0], vector=Embedding.pack(v))
                for (h, _), v in zip(chunk, vectors, strict=True)
            ],
            ignore_conflicts=True,
        )
    return len(missing)


def vectors_for(texts: Sequence[str]) -> np.ndarray:
    """One stored vector per text (embedding the missing ones first). Worker only."""
    embed_missing(texts)
    stored = stored_vectors(texts)
    return np.stack([stored[text_hash(t)] for t in texts])


# --- diverse responses for refine ---------------------------------------------------------


def diverse_responses(
    responses: Sequence[tuple[int, str]], k: int = REFINE_RESPONSES
) -> tuple[list[tuple[int, str]], str]:
    """``k`` of the (id, content) responses, spread by embedding (in their original order),
    and how they were chosen: "all", "diverse", or "first" when the embedding model is not
    available in this worker. Called by the co-authoring job, on the ``default`` queue's
    worker (see the module's docstring)."""
    if len(responses) <= k:
        return list(responses), "all"
    try:
        vectors = vectors_for([content for _, content in responses])
    except (ImportError, EmbeddingError) as exc:
        logger.warning(
            "diverse responses: embeddings unavailable (%s); taking the first %d", exc, k
        )
        return list(responses[:k]), "first"
    return [responses[i] for i in sorted(diverse_subset(vectors, k))], "diverse"
