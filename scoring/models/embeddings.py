"""Stored sentence embeddings, one per (model, text), so a text is embedded once per model
and the web process compares criteria from stored vectors without loading a model."""

from __future__ import annotations

import hashlib

import numpy as np
from django.db import models


def text_hash(text: str) -> str:
    """What a vector is filed under: the sha256 of the exact text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Embedding(models.Model):
    model = models.CharField(
        max_length=200, help_text="The model's key (scoring.local.embeddings.model_key)."
    )
    text_hash = models.CharField(max_length=64)
    dim = models.PositiveIntegerField()
    vector = models.BinaryField(help_text="float32, little-endian, L2-normalised.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "text_hash"], name="embedding_unique_text")
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.text_hash[:12]}"

    def array(self) -> np.ndarray:
        values = np.frombuffer(bytes(self.vector), dtype="<f4")
        if values.shape != (self.dim,):
            raise ValueError(
                f"embedding {self.pk}: {values.size} values stored, {self.dim} expected"
            )
        return values.astype(np.float32)

    @staticmethod
    def pack(vector: np.ndarray) -> bytes:
        return np.asarray(vector, dtype="<f4").tobytes()
