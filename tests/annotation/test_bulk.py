"""Bulk inserts below the import: ids handed out before the rows, values stored as the ORM
would store them, a missing column refused."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction
from django.utils import timezone

from annotation.bulk import insert_rows, new_ids
from annotation.projects.models import AuditEvent
from annotation.rubrics.models import Criterion
from tests.factories import ProjectFactory, RubricFactory

pytestmark = pytest.mark.django_db


def test_new_ids_are_fresh_and_never_reused_after_a_delete():
    project = ProjectFactory()
    first = AuditEvent.objects.create(project=project, action="a")
    last = AuditEvent.objects.create(project=project, action="b")
    deleted = last.pk
    last.delete()
    ids = new_ids(AuditEvent, 3)
    assert len(set(ids)) == 3 and min(ids) > deleted > first.pk
    now = timezone.now()
    assert (
        insert_rows(
            AuditEvent,
            ("id", "project_id", "actor_id", "action", "target", "data", "created_at"),
            [(pk, project.pk, None, "bulk", "", {"n": pk}, now) for pk in ids],
        )
        == 3
    )
    assert sorted(AuditEvent.objects.filter(action="bulk").values_list("pk", flat=True)) == ids
    # The next row the ORM makes takes an id after them.
    assert AuditEvent.objects.create(project=project, action="c").pk > max(ids)
    assert new_ids(AuditEvent, 0) == []


def test_rows_read_back_through_the_orm_as_written():
    version = RubricFactory().current_version
    key = uuid.uuid4()
    insert_rows(
        Criterion,
        (
            "version_id",
            "key",
            "position",
            "text",
            "points",
            "category",
            "kind",
            "tags",
            "provenance",
            "provenance_model",
        ),  # fmt: skip
        [
            (
                version.pk,
                key,
                99,
                "Gives the dose — 5 mg",
                -2.5,
                "pitfall",
                "hard_rule",
                ["axis:accuracy", "ünï"],
                "human",
                "",
            )
        ],  # fmt: skip
    )
    c = Criterion.objects.get(version=version, position=99)
    assert (c.key, c.text, c.points, c.category, c.kind, c.tags) == (
        key, "Gives the dose — 5 mg", -2.5, "pitfall", "hard_rule", ["axis:accuracy", "ünï"],
    )  # fmt: skip


def test_a_missing_column_or_a_short_row_is_refused_and_writes_nothing():
    project = ProjectFactory()
    with pytest.raises(ValueError, match="misses created_at"):
        insert_rows(AuditEvent, ("project_id", "actor_id", "action", "target", "data"), [])
    # (on PostgreSQL the COPY is under way when the row is read: its savepoint rolls back)
    with pytest.raises(ValueError, match="a row of 2 values for 6 columns"), transaction.atomic():
        insert_rows(
            AuditEvent,
            ("project_id", "actor_id", "action", "target", "data", "created_at"),
            [(project.pk, None)],
        )
    assert not AuditEvent.objects.filter(project=project).exists()
