"""Local models: judges read with PyTorch, and sentence embeddings.

``judge``, ``model`` (on loading) and ``synthetic`` import torch and transformers: only the
``gpu`` workers, the benchmark and the tests load them. ``prompting`` is torch-free, and
``embeddings`` imports torch and sentence-transformers only inside the functions that embed
(the web process uses its numpy helpers).
"""
