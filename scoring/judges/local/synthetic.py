"""Models with random weights and a small tokenizer, built from scratch and saved to a
directory, for the tests and the benchmark: they load through the same code as a real
judge (``model.load_judge``) and need no download."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["CHAT_TEMPLATE", "build_model", "build_tokenizer", "llama_config"]

_CORPUS = """
You are a careful grader. Does the RESPONSE above meet the CRITERION above? Answer yes or
no. Which response is better overall under the RUBRIC above? Answer A or B. The response
recommends seeing a doctor, mentions dosage, and avoids unsafe advice. Yes. No. yes no A B
conversation response criterion rubric points essential important optional pitfall user
assistant system patient symptoms treatment evidence explains clearly concise accurate
"""

# A minimal ChatML-style template, as Qwen2 models ship.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(directory: Path, *, vocab_size: int = 512, chat: bool = False) -> Any:
    """A byte-level BPE tokenizer trained on a few lines of judge vocabulary: every text
    can be encoded, and "yes", " yes", "A"… are single tokens. Saved to ``directory``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    words = ["yes", " yes", "Yes", " Yes", "no", " no", "No", " No", "A", " A", "B", " B"]
    core.train_from_iterator([_CORPUS] * 20 + words * 50, trainer=trainer)
    end = specials[0]
    # transformers' tokenizer constructors are not annotated.
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core, bos_token=end, eos_token=end, pad_token=end
    )
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    return tokenizer


def llama_config(**dims: Any) -> Any:
    """A Llama-style config; ``dims`` override the tiny defaults (hidden_size,
    num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size,
    vocab_size, max_position_embeddings, tie_word_embeddings)."""
    from transformers import LlamaConfig

    values: dict[str, Any] = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 512,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "pad_token_id": 0,
    }
    values.update(dims)
    return LlamaConfig(**values)


def build_model(directory: Path, *, seed: int = 0, dtype: Any = None, **dims: Any) -> Any:
    """A causal LM with random weights (seeded) saved to ``directory`` as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = llama_config(**dims)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype or torch.float32)  # type: ignore[no-untyped-call]
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    return model
