"""API shapes of scoring runs: what starts (or previews) one, a run with its progress, its
results, and its controls. The rules on values are the services' (``run_create``,
``plan_units``, ``subset_prompt_ids``), as on the page."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from annotation.rubrics.models import Rubric
from scoring.runs import selectors as run_selectors
from scoring.runs.models import Run
from scoring.runs.modes.registry import mode_for
from scoring.runs.subsets import Subset


class SubsetSerializer(serializers.Serializer[Any]):
    """The prompts of the run: all of them when every field is empty."""

    q = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    rubric_status = serializers.ChoiceField(
        choices=["", *Rubric.Status.values], required=False, default=""
    )
    tags = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    ids = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, help_text="External ids."
    )
    sample = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, default=None, help_text="k prompts."
    )
    seed = serializers.IntegerField(min_value=0, required=False, default=0)

    def to_subset(self) -> Subset:
        data = self.validated_data
        return Subset(
            q=data["q"].strip(),
            rubric_status=data["rubric_status"],
            tags=tuple(t.strip() for t in data["tags"] if t.strip()),
            external_ids=tuple(i.strip() for i in data["ids"] if i.strip()),
            sample=data["sample"],
            seed=data["seed"],
        )


class RunCreateSerializer(serializers.Serializer[Any]):
    """A run's options, as the Runs page's form takes them."""

    endpoint = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="Empty: the project default."
    )
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    mode = serializers.ChoiceField(choices=Run.Mode.choices, default=Run.Mode.PER_CRITERION)
    sources = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, help_text="Empty: all."
    )
    versions = serializers.ChoiceField(choices=Run.Versions.choices, default=Run.Versions.LATEST)
    samples = serializers.IntegerField(required=False, default=1)
    temperature = serializers.FloatField(required=False, allow_null=True, default=None)
    pair_plan = serializers.CharField(required=False, allow_blank=True, default="")
    baseline_source = serializers.CharField(required=False, allow_blank=True, default="")
    pairs_per_prompt = serializers.IntegerField(required=False, default=3)
    budget = serializers.FloatField(required=False, allow_null=True, default=None)
    subset = SubsetSerializer(required=False)

    def to_subset(self) -> Subset:
        inner = SubsetSerializer(data=self.initial_data.get("subset") or {})
        inner.is_valid(raise_exception=True)
        return inner.to_subset()

    def run_options(self) -> dict[str, Any]:
        """The options ``run_create`` and ``plan_units`` take."""
        data = self.validated_data
        pairwise = mode_for(data["mode"]).compares_pairs
        return {
            "mode": data["mode"],
            "sources": [s for s in data["sources"] if s],
            "versions": data["versions"],
            "samples": data["samples"],
            "temperature": data["temperature"],
            "pair_plan": data["pair_plan"] if pairwise else "",
            "baseline_source": data["baseline_source"],
            "pairs_per_prompt": data["pairs_per_prompt"],
        }


class RunPreviewSerializer(serializers.Serializer[Any]):
    """What a run would do, before it is started (``scoring.runs.planning.RunPreview``)."""

    prompts = serializers.IntegerField(help_text="The subset's prompts; 0: the whole project.")
    responses = serializers.IntegerField()
    judgments = serializers.IntegerField()
    calls = serializers.IntegerField()
    reusable = serializers.IntegerField(help_text="Judgments already made, reused at no cost.")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.FloatField()
    seconds = serializers.FloatField(
        allow_null=True, help_text="None for a local judge (as fast as its GPU)."
    )


class RunSerializer(serializers.ModelSerializer[Run]):
    """A run and its progress; ``rate`` is judgments per second of active time."""

    endpoint_name = serializers.CharField(source="endpoint.name", read_only=True, default="")
    prompts = serializers.SerializerMethodField(help_text="The subset's size; 0: every prompt.")
    rate = serializers.SerializerMethodField()
    seconds_left = serializers.SerializerMethodField()
    active_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id", "name", "mode", "status", "note", "endpoint", "endpoint_name", "model",
            "template_version", "versions", "samples", "temperature", "sources", "prompts",
            "pair_plan", "baseline_source", "pairs_per_prompt", "budget", "total", "done",
            "failed", "reused", "calls", "prompt_tokens", "completion_tokens", "cached_tokens",
            "cost", "rate", "seconds_left", "active_seconds", "created_at", "started_at",
            "finished_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_prompts(self, run: Run) -> int:
        return len(run.prompt_ids or [])

    def _rate(self, run: Run) -> dict[str, float | None]:
        cache: dict[int, dict[str, float | None]] = self.__dict__.setdefault("_rates", {})
        if run.pk not in cache:
            cache[run.pk] = run_selectors.run_rate(run)
        return cache[run.pk]

    def get_rate(self, run: Run) -> float | None:
        return self._rate(run)["rate"]

    def get_seconds_left(self, run: Run) -> float | None:
        return self._rate(run)["eta"]

    def get_active_seconds(self, run: Run) -> float | None:
        return self._rate(run)["active"]


class RunControlSerializer(serializers.Serializer[Any]):
    action = serializers.ChoiceField(choices=["pause", "resume", "cancel", "retry_failed"])
    budget = serializers.FloatField(
        required=False, allow_null=True, default=None, help_text="Resume: a raised budget."
    )


class SourceResultSerializer(serializers.Serializer[Any]):
    # A field named "source" shadows Field.source in the stubs (the API's name for it).
    source = serializers.CharField()  # type: ignore[assignment]
    responses = serializers.SerializerMethodField(help_text="Scored, undefined included.")
    undefined = serializers.IntegerField()
    mean = serializers.FloatField(allow_null=True)
    se = serializers.FloatField(allow_null=True)
    histogram = serializers.ListField(
        child=serializers.IntegerField(), help_text="Counts of scores in ten bins of 0.1."
    )

    def get_responses(self, result: Any) -> int:
        return len(result.scores) + int(result.undefined)


class ResponseScoreSerializer(serializers.Serializer[Any]):
    response = serializers.IntegerField(source="response.pk")
    prompt = serializers.IntegerField(source="response.prompt_id")
    source = serializers.CharField(source="response.source")  # type: ignore[assignment]
    sample = serializers.IntegerField()
    score = serializers.FloatField(allow_null=True)
    expected = serializers.FloatField(
        allow_null=True, help_text="Local and logprob judges: from P(yes)."
    )
    failed = serializers.IntegerField()
    reused = serializers.IntegerField()


class PairResultSerializer(serializers.Serializer[Any]):
    a = serializers.IntegerField(source="a.pk")
    b = serializers.IntegerField(source="b.pk")
    sample = serializers.IntegerField()
    winner = serializers.CharField()
    consistent = serializers.BooleanField()
    failed = serializers.BooleanField()
    probability = serializers.FloatField(allow_null=True)


class FailureGroupSerializer(serializers.Serializer[Any]):
    """Failed judgments by reason, with the action that fixes them."""

    kind = serializers.CharField()
    count = serializers.IntegerField()
    what = serializers.CharField()
    action = serializers.CharField()
    example = serializers.CharField()


class RunResultsSerializer(serializers.Serializer[Any]):
    sources = SourceResultSerializer(many=True)
    responses = ResponseScoreSerializer(many=True)
    pairs = PairResultSerializer(many=True)
    failures = FailureGroupSerializer(many=True)
