"""tests/factories.py: every concrete model of the annotation and scoring apps has a factory,
each factory makes rows that save, reload and pass ``full_clean()``, related rows stay in
one project, and no factory holds a secret."""

from __future__ import annotations

import os
from typing import Any

import factory
import pytest
from django.apps import apps
from django.db import models

from annotation.projects.models import Project
from annotation.reviews.models import ReviewSlot
from scoring.judges.models import ENV_NAME, Embedding
from scoring.judges.services import base_url_problem, model_path_allowed
from scoring.runs import planning
from tests import factories as f

APPS = ("annotation", "scoring")


def _concrete_models() -> list[type[models.Model]]:
    return [
        model
        for label in APPS
        for model in apps.get_app_config(label).get_models()
        if not model._meta.proxy and not model._meta.abstract
    ]


def _factories() -> dict[type[models.Model], type[factory.django.DjangoModelFactory]]:
    out: dict[type[models.Model], type[factory.django.DjangoModelFactory]] = {}
    for value in vars(f).values():
        if (
            isinstance(value, type)
            and issubclass(value, factory.django.DjangoModelFactory)
            and value._meta.model is not None
        ):
            assert value._meta.model not in out, f"two factories for {value._meta.model}"
            out[value._meta.model] = value
    return out


MODELS = _concrete_models()
FACTORIES = _factories()


def _factory(model: type[models.Model]) -> type[factory.django.DjangoModelFactory]:
    if model not in FACTORIES:
        pytest.fail(f"no factory for {model._meta.label} in tests/factories.py")
    return FACTORIES[model]


def test_the_apps_have_models():
    labels = {m._meta.label for m in MODELS}
    assert {"annotation.Project", "scoring.Run", "scoring.Judgment"} <= labels
    assert len(MODELS) >= 28


def test_every_concrete_model_has_a_factory():
    missing = sorted(m._meta.label for m in MODELS if m not in FACTORIES)
    assert not missing, f"models without a factory in tests/factories.py: {missing}"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_factory_makes_valid_rows(db, model):
    """Two rows (so sequences and next-position defaults keep unique constraints), each
    reloaded from the database and fully validated: fields, choices, validators, unique
    and check constraints."""
    made = _factory(model).create_batch(2)
    assert len({row.pk for row in made}) == 2
    for row in made:
        assert isinstance(row, model) and row.pk is not None
        reloaded = model.objects.get(pk=row.pk)
        reloaded.full_clean()


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_factory_builds_without_the_database(model):
    """``build()`` touches no database (this test has no ``db`` fixture: a query fails)."""
    row = _factory(model).build()
    assert isinstance(row, model) and row.pk is None


def _projects(obj: models.Model, seen: set[tuple[str, Any]] | None = None) -> set[int]:
    """Every project reachable from ``obj`` through forward foreign keys."""
    seen = set() if seen is None else seen
    if (obj._meta.label, obj.pk) in seen:
        return set()
    seen.add((obj._meta.label, obj.pk))
    found = {obj.pk} if isinstance(obj, Project) else set()
    for field in obj._meta.concrete_fields:
        if field.many_to_one or field.one_to_one:
            target = getattr(obj, field.name)
            if target is not None:
                found |= _projects(target, seen)
    return found


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_related_rows_share_one_project(db, model):
    row = model.objects.get(pk=_factory(model).create().pk)
    assert len(_projects(row)) <= 1, f"{model._meta.label} reaches projects {_projects(row)}"


def test_pairs_answer_their_own_prompt(db):
    label = f.PreferenceLabelFactory()
    assert label.chosen.prompt == label.rejected.prompt == label.prompt
    assert label.chosen != label.rejected
    item = f.ReviewItemFactory()
    assert item.response_a.prompt == item.response_b.prompt == item.prompt
    assert item.response_a != item.response_b


def test_review_rows_agree_with_their_slot(db):
    review = f.PairwiseReviewFactory()
    assert review.item == review.slot.item
    assert review.reviewer == review.slot.reviewer is not None
    assert review.slot.status == ReviewSlot.Status.DONE
    held = f.ReviewSlotFactory(held=True)
    assert held.reviewer is not None and held.status == ReviewSlot.Status.HELD
    assert (held.locked_until - held.claimed_at).total_seconds() == 15 * 60


def test_children_of_one_parent_take_the_next_free_number(db):
    rubric = f.RubricFactory()  # version 1, criteria at positions 0 and 1
    v2, v3 = f.RubricVersionFactory.create_batch(2, rubric=rubric)
    assert (v2.number, v3.number) == (2, 3)
    assert v2.parent == rubric.current_version
    c = f.CriterionFactory(version=rubric.current_version)
    assert c.position == 2
    item = f.ReviewItemFactory()
    assert [f.ReviewSlotFactory(item=item).index for _ in range(3)] == [0, 1, 2]
    assert f.ReviewItemFactory(queue=item.queue).position == item.position + 1
    run = f.RunFactory()
    assert [f.RunChunkFactory(run=run).index for _ in range(2)] == [0, 1]


def test_rubric_children_follow_the_current_version(db):
    rubric = f.RubricFactory()
    current = rubric.current_version
    keys = [str(k) for k in current.criteria.order_by("position").values_list("key", flat=True)]
    draft = f.RubricDraftFactory(rubric=rubric)
    assert draft.base_number == current.number
    assert [c["key"] for c in draft.criteria] == keys
    assert draft.criteria[0]["text"].endswith("(edited)")
    comment = f.CriterionCommentFactory(rubric=rubric)
    assert str(comment.criterion_key) == keys[0] and comment.version_number == current.number
    decision = f.RubricReviewDecisionFactory(rubric=rubric)
    assert decision.version == current


def test_scoring_rows_follow_their_run_and_job(db):
    link = f.RunJudgmentFactory()
    judgment = link.judgment
    assert judgment.created_by_run == link.run
    assert judgment.response.prompt.project == link.run.project
    assert (judgment.mode, judgment.model, judgment.template_version) == (
        link.run.mode,
        link.run.model,
        link.run.template_version,
    )
    run = link.run
    assert run.endpoint.project == run.project
    assert run.judge_hash == planning.judge_hash(run.endpoint, run.temperature)
    chunk = f.RunChunkFactory(run=run)
    (unit,) = chunk.units
    assert run.project.prompts.filter(responses__pk=unit["r"]).exists()
    proposal = f.ProposalFactory()
    assert proposal.prompt == proposal.job.prompt and proposal.project == proposal.job.project
    assert proposal.job.params["prompts"] == [proposal.prompt.pk]
    assert proposal.kind == proposal.job.kind


def test_embedding_vector_matches_its_dimension(db):
    row = Embedding.objects.get(pk=f.EmbeddingFactory(values=(0.6, 0.8)).pk)
    assert row.dim == 2
    assert row.array().tolist() == pytest.approx([0.6, 0.8])


def test_no_factory_holds_a_secret(db):
    """Providers name an environment variable that is set nowhere; endpoints have no key
    field and use a URL the app accepts (the provider's when on one)."""
    provider = f.LLMProviderFactory()
    ENV_NAME(provider.api_key_env)
    assert provider.api_key_env not in os.environ
    endpoint_fields = {field.name for field in f.JudgeEndpointFactory._meta.model._meta.fields}
    assert not {name for name in endpoint_fields if "key" in name or "secret" in name}
    plain = f.JudgeEndpointFactory()
    assert plain.provider is None and base_url_problem(plain.base_url) is None
    on_provider = f.JudgeEndpointFactory(with_provider=True)
    assert on_provider.base_url == on_provider.provider.base_url
    local = f.JudgeEndpointFactory(local=True)
    assert local.base_url == "" and model_path_allowed(local.model_path)
