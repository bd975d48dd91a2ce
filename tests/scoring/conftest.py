"""Shared by the scoring tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def eager(settings, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """Jobs and runs execute inside the call that starts them (the worker path is the same
    code): ``eager(lambda: services.job_start(...))``."""
    settings.CELERY_TASK_ALWAYS_EAGER = True

    def run(fn):  # type: ignore[no-untyped-def]
        with django_capture_on_commit_callbacks(execute=True):
            return fn()

    return run
