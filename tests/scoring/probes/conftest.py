"""A small project for judge probes: prompts with their own rubrics and responses of
several paragraphs, some covering what the criteria ask for and some not."""

from __future__ import annotations

import pytest

from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.judges import services as judge_services
from tests.factories import PromptFactory, ResponseFactory

TOPICS = [
    ("hydration", "Drink plenty of water through the day to stay hydrated."),
    ("rest", "Rest in bed for two days so the body can recover."),
    ("fever", "Check the fever with a thermometer each morning and evening."),
    ("doctor", "See a doctor if the cough lasts longer than three weeks."),
]
CRITERIA = [
    ("Advises drinking water to stay hydrated", 5),
    ("Recommends bed rest for recovery", 4),
    ("Says to check the fever with a thermometer", 3),
    ("Advises seeing a doctor if the cough lasts three weeks", 5),
    ("Recommends antibiotics for a viral cold", -4),
]


@pytest.fixture
def probe_project(project, editor):  # type: ignore[no-untyped-def]
    """6 prompts, each with its rubric of 5 criteria and 3 responses that cover 1–4 topics
    in separate paragraphs."""
    for p in range(6):
        prompt = PromptFactory(project=project)
        rubric_services.rubric_create(
            project=project, title=f"Cold {p}", author=editor, prompt=prompt,
            criteria=[CriterionInput(text=t, points=pts) for t, pts in CRITERIA],
        )  # fmt: skip
        for r in range(3):
            covered = TOPICS[: 1 + (p + r) % 4]
            body = "\n\n".join(text for _, text in covered)
            ResponseFactory(prompt=prompt, source=f"model-{r}", content=body)
    return project


def endpoint_for(project, owner, fake_llm, name, model):  # type: ignore[no-untyped-def]
    return judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={"name": name, "base_url": fake_llm.url + "/v1", "model": model,
              "max_concurrency": 16, "timeout": 5},
    )  # fmt: skip


@pytest.fixture
def judge(project, owner, fake_llm):  # type: ignore[no-untyped-def]
    return endpoint_for(project, owner, fake_llm, "careful judge", "fake-judge")
