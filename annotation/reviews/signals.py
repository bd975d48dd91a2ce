"""What the reviews tell the rest of the studio: ``queue_settled`` (``project_id``,
``queue_id``), sent once every pair of a queue has a final label, after the transaction
that set the last one commits."""

from __future__ import annotations

from django.dispatch import Signal

queue_settled = Signal()
