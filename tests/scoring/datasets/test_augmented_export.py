"""The `augmented_preferences` export read by its consumers: `datasets` loads it with its
label column (causal and injection pairs "chosen", neutral pairs "tie"), the better text of
each causal pair is the chosen one, the judge's outcome on each pair is the probe's, the
filters hold, and TRL's `RewardTrainer` takes one optimisation step on its preference rows.

The judge probe runs on the offline judge; models and tokenizers are tiny, random and built
here (no download)."""

from __future__ import annotations

import math

import pytest

from annotation.prompts.models import Response
from scoring.probes import services as probe_services
from scoring.probes.models import ProbeVariant
from tests.scoring.datasets.test_consumers import (
    changed,
    export_files,
    parameters,
    tiny_tokenizer,
    training_args,
)
from tests.scoring.probes.conftest import judge, probe_project  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def probed(probe_project, editor, judge, eager):  # type: ignore[no-untyped-def]  # noqa: F811
    kinds = ["padding", "reformat", "flattery", "injection", "causal"]
    eager(lambda: probe_services.probe_create(
        project=probe_project, actor=editor, endpoint=judge, rewriter=judge, kinds=kinds,
        sample=10, seed=5,
    ))  # fmt: skip
    return probe_project


def load(hf_datasets, directory, tmp_path):  # type: ignore[no-untyped-def]
    return hf_datasets.load_dataset(
        "json", data_files={"train": str(directory / "train.jsonl")},
        cache_dir=str(tmp_path / "cache"),
    )["train"]  # fmt: skip


def test_the_export_loads_with_its_labels_and_the_judges_outcomes(
    probed, editor, eager, hf_datasets, tmp_path
):
    directory = export_files(eager, probed, editor, kind="augmented_preferences", format="jsonl")
    dataset = load(hf_datasets, directory, tmp_path)
    variants = ProbeVariant.objects.filter(variant__isnull=False)
    assert dataset.num_rows == variants.count()
    for column in ("prompt", "chosen", "rejected", "label", "kind", "judge_passed"):
        assert column in dataset.column_names
    rows = list(dataset)
    assert {r["label"] for r in rows if r["kind"] in ("padding", "reformat", "flattery")} == {"tie"}
    assert {r["label"] for r in rows if r["kind"] in ("injection", "causal")} == {"chosen"}
    copies = set(
        Response.objects.filter(source__startswith="probe:").values_list("content", flat=True)
    )
    originals = set(Response.objects.without_probes().values_list("content", flat=True))
    for r in rows:
        chosen, rejected = r["chosen"][0]["content"], r["rejected"][0]["content"]
        assert r["prompt"][-1]["role"] == "user" and r["chosen"][0]["role"] == "assistant"
        if r["kind"] == "injection":  # the response that addresses the grader loses
            assert rejected in copies and chosen in originals
        if r["kind"] == "causal":
            removed_positive = r["direction"] == "remove" and r["criterion_points"] > 0
            # the original is chosen over a rewrite that removed a positive criterion
            original, rewrite = (chosen, rejected) if removed_positive else (rejected, chosen)
            assert original in originals and rewrite in copies
            assert r["criterion"] and r["judge_passed"] is True  # the offline judge flips it
        if r["kind"] == "injection":
            assert r["judge_passed"] is True and r["judge_agreement"] == 1.0
    expected = {v.pk: v.passed for v in variants}
    assert sorted(r["judge_passed"] for r in rows) == sorted(expected.values())

    only = export_files(
        eager, probed, editor, kind="augmented_preferences", format="jsonl",
        probe_kinds=("causal",), probe_passed_only=True,
    )  # fmt: skip
    causal = load(hf_datasets, only, tmp_path / "2")
    assert set(causal["kind"]) == {"causal"}
    assert causal.num_rows == variants.filter(kind="causal", target_flipped=True).count() > 0


def test_trl_reward_trainer_takes_a_step_on_the_preference_rows(
    probed, editor, eager, hf_datasets, tmp_path
):
    torch = pytest.importorskip("torch")
    trl = pytest.importorskip("trl")
    from transformers import LlamaForSequenceClassification

    from scoring.judges.local.synthetic import llama_config

    directory = export_files(eager, probed, editor, kind="augmented_preferences", format="jsonl")
    dataset = load(hf_datasets, directory, tmp_path).filter(lambda r: r["label"] == "chosen")
    assert dataset.num_rows > 0 and set(dataset["kind"]) == {"injection", "causal"}
    tokenizer = tiny_tokenizer(tmp_path / "tokenizer")
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(llama_config(num_labels=1))
    trainer = trl.RewardTrainer(
        model=model,
        args=training_args(trl.RewardConfig, tmp_path, dataset.num_rows),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    before = parameters(trainer.model)
    result = trainer.train()
    assert trainer.state.global_step == 1
    assert math.isfinite(result.training_loss) and result.training_loss > 0
    assert any(name.startswith("score.") for name in changed(trainer.model, before))


def test_the_command_exports_the_chosen_kinds(probed, tmp_path):
    import io

    from django.core.management import call_command

    out = tmp_path / "out"
    call_command(
        "export_dataset", "--project", probed.slug, "--kind", "augmented_preferences",
        "--format", "jsonl", "--out", str(out), "--probe-kinds", "injection,flattery",
        "--probe-passed-only", stdout=io.StringIO(),
    )  # fmt: skip
    import json

    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in rows} == {"injection", "flattery"}
    assert len(rows) == ProbeVariant.objects.filter(kind__in=["injection", "flattery"]).count()
    assert all(r["judge_passed"] for r in rows)
