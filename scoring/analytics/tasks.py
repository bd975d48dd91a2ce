"""Celery tasks: thin, ids in, one service call."""

from __future__ import annotations

from celery import shared_task


# celery ships no types: its decorators are untyped.
@shared_task(name="scoring.tasks.embed_rubric_texts", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def embed_rubric_texts(rubric_id: int, user_id: int | None) -> int:
    """Embed the texts a rubric's near-duplicate report still misses; enqueued on the ``gpu``
    queue. Safe to repeat: only missing vectors are computed and they are unique by
    (model, text)."""
    from scoring.analytics.duplicates import rubric_texts_embed

    return rubric_texts_embed(rubric_id=rubric_id, user_id=user_id)
