"""A run on part of a project: its prompts narrowed by search, rubric status, criterion
tags and a list of external ids, then, optionally, a seeded random sample of k of them.
The same subset of the same data always gives the same prompts."""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.db.models import F

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.prompts import selectors as prompt_selectors
from annotation.prompts.models import Prompt
from annotation.rubrics.models import Criterion


@dataclass(frozen=True)
class Subset:
    q: str = ""  # search, as the prompt table searches
    rubric_status: str = ""
    tags: tuple[str, ...] = ()  # a criterion of the rubric's current version carries one
    external_ids: tuple[str, ...] = ()
    sample: int | None = None  # k prompts drawn at random from the rest
    seed: int = 0

    @property
    def everything(self) -> bool:
        return not (self.q or self.rubric_status or self.tags or self.external_ids or self.sample)


def subset_prompt_ids(*, project: Project, subset: Subset) -> list[int]:
    """The ids of the subset's prompts, in id order; [] for the whole project (what a run's
    ``prompt_ids`` means by it). A subset that matches no prompt is an error, never "all"."""
    if subset.everything:
        return []
    prompts = prompt_selectors.prompt_list(
        project=project, q=subset.q, rubric_status=subset.rubric_status
    )
    if subset.external_ids:
        wanted = set(subset.external_ids)
        found = set(
            Prompt.objects.filter(project=project, external_id__in=wanted).values_list(
                "external_id", flat=True
            )
        )
        missing = sorted(wanted - found)
        if missing:
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            raise ApplicationError(f"No prompt of this project has the id {shown}.")
        prompts = prompts.filter(external_id__in=wanted)
    ids = sorted(prompts.values_list("pk", flat=True))
    if subset.tags:
        ids = _with_tags(ids, set(subset.tags))
    if subset.sample is not None and subset.sample < len(ids):
        ids = sorted(random.Random(subset.seed).sample(ids, subset.sample))  # noqa: S311
    if not ids:
        raise ApplicationError("No prompt matches this subset: widen it, or leave it empty.")
    return ids


def _with_tags(ids: list[int], tags: set[str]) -> list[int]:
    """The prompts whose rubric's current version has a criterion carrying one of ``tags``."""
    tagged = set()
    rows = Criterion.objects.filter(
        version__rubric__prompt_id__in=ids,
        version=F("version__rubric__current_version"),
    ).values_list("version__rubric__prompt_id", "tags")
    for prompt_id, criterion_tags in rows.iterator(chunk_size=5000):
        if tags.intersection(str(t) for t in criterion_tags or ()):
            tagged.add(prompt_id)
    return [i for i in ids if i in tagged]
