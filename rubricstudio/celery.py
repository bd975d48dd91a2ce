"""The Celery app. Workers: `celery -A rubricstudio worker -Q default` (and `-Q gpu`)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rubricstudio.settings")

app = Celery("rubricstudio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
