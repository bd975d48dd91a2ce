"""What a run tells the rest of the studio: ``run_finished`` (``run_id``), sent once the
transaction that ended the run (done, failed or cancelled) has committed."""

from __future__ import annotations

from django.dispatch import Signal

run_finished = Signal()
