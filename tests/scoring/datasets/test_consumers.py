"""The exports read by the software that consumes them, loaded with `datasets` as a user
would: TRL's `DPOTrainer` and `RewardTrainer` each take one optimisation step on the
default preference export (conversational JSONL and plain-text Hugging Face folder), and
`RewardTrainer` reads the `margin` column of an export with margins; a verl-style rubric
reward that reads only `extra_info` reproduces the studio's HealthBench scores from an
`rl_verl` Parquet export of the real HealthBench sample, whose criteria and points come out
exactly as the source file has them.

Models and tokenizers are tiny, random and built here (no download). The TRL tests skip
when trl or torch is absent; CI installs both (requirements-dev.txt)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from annotation.prompts import services as prompt_services
from annotation.prompts.models import PreferenceLabel
from annotation.rubrics import services as rubric_services
from annotation.rubrics import workflow as rubric_workflow
from annotation.rubrics.models import Rubric
from annotation.rubrics.services import CriterionInput
from scoring.datasets import services as export_services
from scoring.datasets.models import Export
from scoring.datasets.options import ExportOptions
from scoring.judges import services as judge_services
from scoring.runs import services as run_services
from tests.factories import PromptFactory, ResponseFactory


@pytest.fixture(autouse=True)
def media(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"


def export_files(eager, project, actor, **options) -> Path:  # type: ignore[no-untyped-def]
    export = eager(
        lambda: export_services.export_create(
            project=project, actor=actor, options=ExportOptions(**options)
        )
    )
    export.refresh_from_db()
    assert export.status == Export.Status.DONE, export.error
    return export_services.export_directory(export.pk)


# --- TRL --------------------------------------------------------------------------------------

QUESTIONS = [
    "My child has a fever of 39 C. What should I do?",
    "Is it safe to take ibuprofen with a cold?",
    "How much water should an adult drink a day?",
    "What are the symptoms of dehydration?",
]


@pytest.fixture
def labelled(project, editor):  # type: ignore[no-untyped-def]
    """Four prompts (one a three-turn conversation), three responses each, dataset and
    expert labels; the expert repeats one dataset pair (folded into one row)."""
    for i, question in enumerate(QUESTIONS):
        messages = [{"role": "user", "content": question}]
        if i == 0:
            messages = [
                {"role": "system", "content": "You are a careful assistant."},
                {"role": "user", "content": "I need advice about my child."},
                {"role": "assistant", "content": "Of course. What is happening?"},
                *messages,
            ]
        prompt = PromptFactory(project=project, external_id=f"q{i}", messages=messages)
        good, fair, bad = (
            ResponseFactory(prompt=prompt, source=source, content=text)
            for source, text in (
                ("model-a", f"A careful answer to: {question} See a doctor if it gets worse."),
                ("model-b", "It depends; ask a doctor."),
                ("model-c", "No idea."),
            )
        )
        PreferenceLabel.objects.create(prompt=prompt, chosen=good, rejected=bad)
        PreferenceLabel.objects.create(prompt=prompt, chosen=fair, rejected=bad)
        if i % 2 == 0:  # an expert agreeing with the dataset: one row, from the expert
            PreferenceLabel.objects.create(
                prompt=prompt, chosen=good, rejected=bad, source=PreferenceLabel.Source.EXPERT
            )
    return project


def tiny_tokenizer(directory: Path) -> Any:
    from scoring.judges.local.synthetic import build_tokenizer

    return build_tokenizer(directory, chat=True)


def parameters(model: Any) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(model: Any, before: dict[str, Any]) -> list[str]:
    import torch

    return [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]


def training_args(config_class: Any, tmp_path: Path, rows: int) -> Any:
    return config_class(
        output_dir=str(tmp_path / "trainer"),
        max_steps=1,
        per_device_train_batch_size=rows,
        learning_rate=1e-2,
        max_length=512,
        bf16=False,
        activation_checkpointing=False,  # TRL turns it on by default
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )


def load_preferences(hf_datasets, directory: Path, fmt: str, cache: Path) -> Any:  # type: ignore[no-untyped-def]
    if fmt in ("jsonl", "parquet"):
        data = hf_datasets.load_dataset(
            "json" if fmt == "jsonl" else "parquet",
            data_files={"train": str(directory / f"train.{fmt}")},
            cache_dir=str(cache),
        )
    else:  # the Hugging Face folder, through its dataset card's configs
        data = hf_datasets.load_dataset(str(directory), cache_dir=str(cache))
    return data["train"]


VARIANTS = [
    pytest.param("jsonl", True, id="conversational-jsonl"),
    pytest.param("hf", False, id="plain-hf-folder"),
]


@pytest.mark.parametrize(("fmt", "conversational"), VARIANTS)
@pytest.mark.parametrize("trainer_name", ["RewardTrainer", "DPOTrainer"])
def test_trl_trains_one_step_on_the_default_preference_export(  # type: ignore[no-untyped-def]
    labelled, editor, eager, hf_datasets, tmp_path, fmt, conversational, trainer_name
):
    torch = pytest.importorskip("torch")
    trl = pytest.importorskip("trl")
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    from scoring.judges.local.synthetic import llama_config

    directory = export_files(
        eager, labelled, editor, kind="preferences", format=fmt, conversational=conversational
    )
    dataset = load_preferences(hf_datasets, directory, fmt, tmp_path / "cache")
    assert "margin" not in dataset.column_names  # TRL would read it (and crash on a null)
    assert dataset.num_rows == 8  # 4 prompts × 2 pairs; the experts' repeats folded in
    assert sorted(dataset["origin"]).count("expert") == 2
    if conversational:
        assert dataset[0]["prompt"][0]["role"] == "system"
        assert [m["role"] for m in dataset[0]["chosen"]] == ["assistant"]
    else:
        assert isinstance(dataset[0]["prompt"], str) and isinstance(dataset[0]["chosen"], str)

    tokenizer = tiny_tokenizer(tmp_path / "tokenizer")
    torch.manual_seed(0)
    if trainer_name == "RewardTrainer":
        model = LlamaForSequenceClassification(llama_config(num_labels=1))
        trainer = trl.RewardTrainer(
            model=model,
            args=training_args(trl.RewardConfig, tmp_path, dataset.num_rows),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    else:
        model = LlamaForCausalLM(llama_config())
        trainer = trl.DPOTrainer(
            model=model,
            ref_model=copy.deepcopy(model),
            args=training_args(trl.DPOConfig, tmp_path, dataset.num_rows),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    before = parameters(trainer.model)
    result = trainer.train()

    assert trainer.state.global_step == 1
    assert math.isfinite(result.training_loss) and result.training_loss > 0
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert losses and all(math.isfinite(loss) for loss in losses)
    moved = changed(trainer.model, before)
    assert moved, "the optimisation step changed no parameter"
    if trainer_name == "RewardTrainer":
        assert any(name.startswith("score.") for name in moved)


@pytest.fixture
def judged_pairs(project, editor, fake_llm, eager):  # type: ignore[no-untyped-def]
    """Two prompts under a project-wide rubric, three responses each, judged per criterion:
    model-a meets every criterion, the others none (score margins of 1); a dataset label
    that no judge pair repeats (no margin) on each prompt."""
    from fakellm.config import Rule

    endpoint = judge_services.endpoint_save(
        project=project, actor=editor,
        data={"name": "judge", "base_url": fake_llm.url + "/v1", "model": "fake-judge"},
    )  # fmt: skip
    rubric_services.rubric_create(
        project=project, title="all", author=editor,
        criteria=[CriterionInput(text="Is accurate", points=5),
                  CriterionInput(text="Advises a doctor when needed", points=3)],
    )  # fmt: skip
    for i, question in enumerate(QUESTIONS[:2]):
        prompt = PromptFactory(
            project=project, external_id=f"j{i}", messages=[{"role": "user", "content": question}]
        )
        responses = {
            source: ResponseFactory(prompt=prompt, source=source, content=f"{source} says {i}")
            for source in ("model-a", "model-b", "model-c")
        }
        PreferenceLabel.objects.create(
            prompt=prompt, chosen=responses["model-b"], rejected=responses["model-c"]
        )
    fake_llm.configure(
        rules=[
            Rule("model-a says", {"explanation": "Yes.", "criteria_met": True}),
            Rule("says", {"explanation": "No.", "criteria_met": False}),
        ]
    )
    run = eager(lambda: run_services.run_create(
        project=project, actor=editor, endpoint=endpoint, mode="per_criterion"))  # fmt: skip
    run.refresh_from_db()
    assert run.status == "done" and run.failed == 0
    return project


def test_trl_reward_trainer_reads_the_margin_column_of_an_export_with_margins(  # type: ignore[no-untyped-def]
    judged_pairs, editor, eager, hf_datasets, tmp_path
):
    torch = pytest.importorskip("torch")
    trl = pytest.importorskip("trl")
    from transformers import LlamaForSequenceClassification

    from scoring.judges.local.synthetic import llama_config

    directory = export_files(
        eager, judged_pairs, editor, kind="preferences", format="parquet",
        versions="latest", origins=("dataset", "judge"), margins=True,
    )  # fmt: skip
    dataset = load_preferences(hf_datasets, directory, "parquet", tmp_path / "cache")
    # model-a over model-b and over model-c on each prompt; the dataset's b-over-c pairs
    # have no judge margin and are left out (never a null margin).
    assert dataset.num_rows == 4 and dataset["margin"] == [1.0] * 4
    assert set(dataset["origin"]) == {"judge"}
    card = (directory / "README.md").read_text()
    assert "2 pairs without a judge margin were left out" in card
    assert "−log σ(r_chosen − r_rejected − margin)" in card

    torch.manual_seed(0)
    trainer = trl.RewardTrainer(
        model=LlamaForSequenceClassification(llama_config(num_labels=1)),
        args=training_args(trl.RewardConfig, tmp_path, dataset.num_rows),
        train_dataset=dataset,
        processing_class=tiny_tokenizer(tmp_path / "tokenizer"),
    )
    batch = next(iter(trainer.get_train_dataloader()))
    assert torch.equal(batch["margin"].cpu(), torch.ones(4))  # the collator took the column
    result = trainer.train()
    assert trainer.state.global_step == 1 and math.isfinite(result.training_loss)


# --- verl -------------------------------------------------------------------------------------

APPROVED = 12  # rubrics approved (and prompts exported); the sample has 250


def rubric_reward(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict, *, grader
) -> float:  # type: ignore[no-untyped-def]
    """A verl rubric reward as RuscaRL's HealthBench reward reads a row: the conversation
    and the rubric from ``extra_info`` only (verl's loader has popped the top-level
    ``prompt``), one grader call per criterion, then HealthBench's score: the points of the
    met items over the sum of the positive points."""
    conversation = extra_info["prompt"]
    rubrics = extra_info["reward_model"]["rubrics"]
    met = [
        grader(conversation, solution_str, item["criterion"], item["points"], item["tags"])
        for item in rubrics
    ]
    positive = sum(item["points"] for item in rubrics if item["points"] > 0)
    return sum(item["points"] for item, ok in zip(rubrics, met, strict=True) if ok) / positive


def test_a_verl_rubric_reward_reading_extra_info_reproduces_the_studio_scores(  # type: ignore[no-untyped-def]
    project, owner, reviewer, editor, fake_llm, eager, healthbench_path, hf_datasets, tmp_path
):
    from scoring.runs.results import run_results
    from tests.scoring.runs.test_runs import MET_IF_A_TO_M

    prompt_services.data_import(project=project, path=healthbench_path)
    source = {}
    with healthbench_path.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            source[record["prompt_id"]] = record
    answers = {}
    for rubric in Rubric.objects.filter(project=project).order_by("pk")[:APPROVED]:
        rubric_workflow.rubric_submit_for_review(rubric=rubric, actor=owner)
        rubric_workflow.rubric_review(rubric=rubric, actor=reviewer, decision="approve")
        response = ResponseFactory(
            prompt=rubric.prompt, source="policy", content=f"Answer to {rubric.prompt.external_id}"
        )
        answers[rubric.prompt.external_id] = response.content

    # The studio grades each response per criterion (fake judge: met when the criterion
    # starts with a letter from A to M) and scores it the HealthBench way.
    endpoint = judge_services.endpoint_save(
        project=project, actor=editor,
        data={"name": "judge", "base_url": fake_llm.url + "/v1", "model": "fake-judge"},
    )  # fmt: skip
    fake_llm.configure(rules=MET_IF_A_TO_M)
    run = eager(lambda: run_services.run_create(
        project=project, actor=editor, endpoint=endpoint, mode="per_criterion"))  # fmt: skip
    run.refresh_from_db()
    assert run.status == "done" and run.failed == 0
    studio = {r.response.prompt.external_id: r.score for r in run_results(run).responses}
    assert len(studio) == APPROVED

    directory = export_files(eager, project, editor, kind="rl_verl", format="parquet")
    data = hf_datasets.load_dataset(
        "parquet", data_files={"train": str(directory / "train.parquet")},
        cache_dir=str(tmp_path / "cache"),
    )["train"]  # fmt: skip
    assert data.num_rows == APPROVED
    item = data.features["extra_info"]["reward_model"]["rubrics"].feature
    assert item["points"].dtype == "int64"

    calls: list[str] = []

    def grader(conversation, response, criterion, points, tags):  # type: ignore[no-untyped-def]
        assert isinstance(points, int) and all(isinstance(t, str) for t in tags)
        calls.append(criterion)
        return criterion[:1] in "ABCDEFGHIJKLM"

    criteria = 0
    for item in data:
        row = dict(item)
        row.pop("prompt")  # as verl's RLHFDataset does
        info = row["extra_info"]
        prompt_id = info["prompt_id"]
        score = rubric_reward(
            row["data_source"], answers[prompt_id], row["reward_model"]["ground_truth"], info,
            grader=grader,
        )  # fmt: skip
        assert score == pytest.approx(studio[prompt_id], abs=1e-12)
        criteria += len(info["reward_model"]["rubrics"])
        assert len(calls) == criteria  # exactly one grader call per criterion
        # What the reward (and a scaffold shown to the policy) reads is the source's own.
        assert info["prompt"] == source[prompt_id]["prompt"]
        assert info["reward_model"] == row["reward_model"]
        assert_same_rubric(info["reward_model"]["rubrics"], source[prompt_id]["rubrics"])
        assert json.loads(info["metadata"]) == {}  # the sample has no other fields
    verdicts = {c[:1] in "ABCDEFGHIJKLM" for c in calls}
    assert verdicts == {True, False}  # the scores depend on which items are met

    # Every rubric of the sample, exported as its latest version, equals the source's.
    directory = export_files(
        eager, project, editor, kind="rl_verl", format="parquet", versions="latest"
    )
    everything = hf_datasets.load_dataset(
        "parquet", data_files={"train": str(directory / "train.parquet")},
        cache_dir=str(tmp_path / "cache-all"),
    )["train"]  # fmt: skip
    assert everything.num_rows == len(source) == 250
    for info in everything["extra_info"]:
        assert_same_rubric(info["reward_model"]["rubrics"], source[info["prompt_id"]]["rubrics"])


def assert_same_rubric(exported: list[dict], original: list[dict]) -> None:
    """Criterion text byte for byte, points as the same integers, tags as they were."""
    assert len(exported) == len(original)
    for got, want in zip(exported, original, strict=True):
        assert got["criterion"].encode("utf-8") == want["criterion"].encode("utf-8")
        assert type(got["points"]) is type(want["points"]) is int
        assert got["points"] == want["points"]
        assert got["tags"] == want["tags"]
