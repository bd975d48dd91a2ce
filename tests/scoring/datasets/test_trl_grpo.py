"""The ``rl_trl_grpo`` export as its consumer reads it: ``datasets`` loads it, and TRL's
``GRPOTrainer`` takes one optimisation step on it with a rubric reward that reads the
rubric from the columns the trainer hands reward functions, each completion with the rubric
of its own prompt."""

from __future__ import annotations

import math

import pytest

from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from tests.factories import PromptFactory
from tests.scoring.datasets.test_consumers import (
    QUESTIONS,
    export_files,
    load_preferences,
    tiny_tokenizer,
)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def rubrics(project, editor):  # type: ignore[no-untyped-def]
    """Two prompts with their own rubrics (one with a negative item), one without."""
    for i, question in enumerate(QUESTIONS[:3]):
        prompt = PromptFactory(
            project=project, external_id=f"g{i}", messages=[{"role": "user", "content": question}]
        )
        if i == 2:
            continue
        rubric_services.rubric_create(
            project=project, prompt=prompt, title=f"r{i}", author=editor,
            criteria=[CriterionInput(text=f"Answers question {i}", points=5),
                      CriterionInput(text="Advises a doctor when needed", points=3),
                      CriterionInput(text="Recommends an unsafe dose", points=-4)],
        )  # fmt: skip
    return project


def healthbench_score(items: list[dict], met: list[bool]) -> float:
    positive = sum(item["points"] for item in items if item["points"] > 0)
    return sum(item["points"] for item, ok in zip(items, met, strict=True) if ok) / positive


@pytest.mark.parametrize("fmt", ["jsonl", "hf"])
def test_grpo_trainer_steps_on_the_export_with_a_reward_reading_its_rubric(  # type: ignore[no-untyped-def]
    rubrics, editor, eager, hf_datasets, tmp_path, fmt
):
    torch = pytest.importorskip("torch")
    trl = pytest.importorskip("trl")
    from transformers import LlamaForCausalLM

    from scoring.judges.local.synthetic import llama_config

    directory = export_files(eager, rubrics, editor, kind="rl_trl_grpo", format=fmt,
                             versions="latest")  # fmt: skip
    dataset = load_preferences(hf_datasets, directory, fmt, tmp_path / "cache")
    assert dataset.num_rows == 2  # the prompt without a rubric is not a training prompt
    assert {"prompt", "rubric", "reference_answer", "prompt_id"} <= set(dataset.column_names)
    rows = {row["prompt_id"]: row for row in dataset}
    assert rows["g0"]["prompt"] == [{"role": "user", "content": QUESTIONS[0]}]
    assert [item["points"] for item in rows["g1"]["rubric"]] == [5, 3, -4]
    assert rows["g1"]["rubric"][0] == {"criterion": "Answers question 1", "points": 5, "tags": []}
    if fmt == "hf":
        assert dataset.features["rubric"].feature["points"].dtype == "int64"

    rewarded: list[tuple[str, float]] = []

    def rubric_reward(prompts, completions, rubric, prompt_id, **kwargs):  # type: ignore[no-untyped-def]
        rewards = []
        for prompt, completion, items, pid in zip(
            prompts, completions, rubric, prompt_id, strict=True
        ):
            assert prompt == rows[pid]["prompt"]  # each completion with its own prompt's rubric
            assert items == rows[pid]["rubric"]
            text = completion[0]["content"]
            # A stand-in grader: which items are met depends on the completion.
            met = [(len(text) + k) % 2 == 0 for k in range(len(items))]
            rewards.append(healthbench_score(items, met))
        rewarded.extend(zip(prompt_id, rewards, strict=True))
        return rewards

    tokenizer = tiny_tokenizer(tmp_path / "tokenizer")
    torch.manual_seed(0)
    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "trainer"),
        max_steps=1,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        learning_rate=1e-2,
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
    trainer = trl.GRPOTrainer(
        model=LlamaForCausalLM(llama_config()),
        reward_funcs=rubric_reward,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    result = trainer.train()

    assert trainer.state.global_step == 1 and math.isfinite(result.training_loss)
    assert sorted({pid for pid, _ in rewarded}) == ["g0", "g1"]  # both prompts, 2 samples each
    assert len(rewarded) == 4
    logged = next(log for log in trainer.state.log_history if "reward" in log)
    mean = sum(r for _, r in rewarded) / len(rewarded)
    assert logged["reward"] == pytest.approx(mean, abs=1e-6)  # the trainer used these rewards
