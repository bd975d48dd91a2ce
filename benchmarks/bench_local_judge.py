"""Local judge throughput: P(yes) for (response, criterion) pairs with a causal LM of random
weights built from a config, on a synthetic rubric workload.

Workload: R responses × C criteria. Each prompt is [instructions (fixed, ~150 tokens) +
conversation (~50) + response (~T, ±20 %)] + [criterion (~K, ±30 %) + question (fixed,
~12)]; token ids are drawn at random (the speed of a forward pass does not depend on which
tokens it reads).

Three ways to score all R × C pairs, each timed `--repeats` times (median quoted):

* naive: every prompt in full, sorted by length, packed by the token budget, left-padded;
* shared: each response's prefix once (its KV cache kept), then every criterion against it;
* generate: `model.generate()` decoding 2 tokens (the answer and the end of turn, the
  least a generating judge writes) on a sample of prompts, batched like naive; its rate
  is extrapolated from the sample.

Prints (response, criterion) scores/s, prefill tokens/s (prompt tokens through the model,
padding excluded), model FLOPs utilisation — the forward FLOPs the prompts need
(2 × non-embedding parameters per token, the LM head only at the answer positions, and
causal attention 4 × layers × hidden × context per token) per second, over the matmul
throughput measured on the same device in the same dtype — the speedup of shared over
naive and over generate, the largest |P_shared − P_naive|, and peak GPU memory.

    python benchmarks/bench_local_judge.py --size small            # CPU, CI
    python benchmarks/bench_local_judge.py --size 1.5b --device cuda --dtype bfloat16

Sizes: small (CPU: hidden 256, 4 layers), 0.5b and 1.5b (Qwen2-0.5B / 1.5B dimensions:
vocab 151,936, tied embeddings; Llama-style blocks).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = {
    "small": {
        "hidden_size": 256,
        "intermediate_size": 688,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 32000,
    },
    "0.5b": {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "1.5b": {
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
}
INSTRUCTION_TOKENS, CONVERSATION_TOKENS, QUESTION_TOKENS = 150, 50, 12


def workload(
    responses: int,
    criteria: int,
    response_tokens: int,
    criterion_tokens: int,
    vocab: int,
    seed: int,
):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)

    def tokens(n: int) -> list[int]:
        return [rng.randrange(1000, vocab) for _ in range(n)]

    instructions, question = tokens(INSTRUCTION_TOKENS), tokens(QUESTION_TOKENS)
    groups = []
    for _ in range(responses):
        length = max(1, round(response_tokens * rng.uniform(0.8, 1.2)))
        prefix = instructions + tokens(CONVERSATION_TOKENS) + tokens(length)
        suffixes = [
            tokens(max(1, round(criterion_tokens * rng.uniform(0.7, 1.3)))) + question
            for _ in range(criteria)
        ]
        groups.append((prefix, suffixes))
    return groups


def measure_matmul(torch, device: str, dtype) -> float:  # type: ignore[no-untyped-def]
    """Median FLOP/s of square matmuls in ``dtype`` on ``device``."""
    n = 8192 if device.startswith("cuda") else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    rates = []
    for _ in range(5):
        sync(torch, device)
        start = time.perf_counter()
        reps = 20 if device.startswith("cuda") else 3
        for _ in range(reps):
            a @ b
        sync(torch, device)
        rates.append(2 * n**3 * reps / (time.perf_counter() - start))
    return statistics.median(rates)


def sync(torch, device: str) -> None:  # type: ignore[no-untyped-def]
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def model_flops(config, groups, shared: bool) -> float:  # type: ignore[no-untyped-def]
    """Forward FLOPs the prompts need (see the module docstring)."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = hidden // heads
    per_layer = (
        hidden * heads * head_dim  # q
        + 2 * hidden * kv_heads * head_dim  # k, v
        + heads * head_dim * hidden  # o
        + 3 * hidden * config.intermediate_size  # gate, up, down
    )
    linear = 2 * layers * per_layer
    head = 2 * hidden * config.vocab_size  # once per read

    def attention(context_start: int, count: int) -> float:
        # Σ over the tokens of its context length (causal), × 4 · layers · heads · head_dim
        total = count * context_start + count * (count + 1) / 2
        return 4 * layers * heads * head_dim * total

    flops = 0.0
    for prefix, suffixes in groups:
        if shared:
            flops += linear * len(prefix) + attention(0, len(prefix))
            for s in suffixes:
                flops += linear * len(s) + attention(len(prefix), len(s)) + head
        else:
            for s in suffixes:
                n = len(prefix) + len(s)
                flops += linear * n + attention(0, n) + head
    return flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--responses", type=int, default=None, help="default: 1000 (small: 40)")
    parser.add_argument("--criteria", type=int, default=10)
    parser.add_argument("--response-tokens", type=int, default=300)
    parser.add_argument("--criterion-tokens", type=int, default=30)
    parser.add_argument(
        "--batch-tokens", type=int, default=None, help="default: 32768 CUDA, 4096 CPU"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--generate-sample", type=int, default=None, help="prompts (default 256 CUDA, 16 CPU)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from scoring.judges.local import synthetic
    from scoring.judges.local.judge import LocalJudge

    cuda = args.device.startswith("cuda")
    dtype = (
        getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if cuda else torch.float32)
    )
    responses = args.responses or (1000 if args.size != "small" else 40)
    budget = args.batch_tokens or (32768 if cuda else 4096)
    sample = args.generate_sample or (256 if cuda else 16)
    torch.manual_seed(0)
    config = synthetic.llama_config(**SIZES[args.size], max_position_embeddings=4096)
    with torch.device(args.device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = synthetic.build_tokenizer(Path(tmp))
    judge = LocalJudge(model, tokenizer, batch_tokens=budget)
    params = sum(p.numel() for p in model.parameters())
    groups = workload(
        responses,
        args.criteria,
        args.response_tokens,
        args.criterion_tokens,
        config.vocab_size,
        seed=1,
    )
    pairs = responses * args.criteria
    flat = [p + s for p, ss in groups for s in ss]
    print(
        f"# {args.size}: {params / 1e9:.3f}B parameters, {dtype}, {args.device}; {responses} responses × "
        f"{args.criteria} criteria = {pairs} pairs; token budget {budget}"
    )
    print(
        f"# mean prompt {statistics.mean(map(len, flat)):.0f} tokens, mean prefix {statistics.mean(len(p) for p, _ in groups):.0f}"
    )
    peak = measure_matmul(torch, args.device, dtype)
    print(f"matmul throughput ({dtype}): {peak / 1e12:.1f} TFLOP/s")

    def timed(fn):  # type: ignore[no-untyped-def]
        times, tokens, result = [], 0, None
        for _ in range(args.repeats):
            judge.tokens_run = 0
            sync(torch, args.device)
            start = time.perf_counter()
            result = fn()
            sync(torch, args.device)
            times.append(time.perf_counter() - start)
            tokens = judge.tokens_run
        return statistics.median(times), tokens, result

    # Warm up kernels and the allocator.
    judge.score_shared(groups[:8])
    judge.score(flat[:64])
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    figures: dict[str, object] = {"size": args.size, "device": args.device, "dtype": str(dtype), "pairs": pairs,
                                  "matmul_tflops": peak / 1e12}  # fmt: skip
    shared_time, shared_tokens, shared_readings = timed(lambda: judge.score_shared(groups))
    naive_time, naive_tokens, naive_readings = timed(lambda: judge.score(flat))
    gap = max(
        abs(a.probability - b.probability)
        for a, b in zip([r for rs in shared_readings for r in rs], naive_readings, strict=True)
    )
    for name, seconds, tokens, flops in (
        ("naive", naive_time, naive_tokens, model_flops(config, groups, shared=False)),
        ("shared", shared_time, shared_tokens, model_flops(config, groups, shared=True)),
    ):
        mfu = flops / seconds / peak
        print(
            f"{name:>8}: {pairs / seconds:10.1f} scores/s  {tokens / seconds:12.0f} prefill tokens/s  "
            f"MFU {100 * mfu:5.1f}%  ({seconds:.2f} s, median of {args.repeats})"
        )
        figures[name] = {"seconds": seconds, "scores_per_s": pairs / seconds, "tokens_per_s": tokens / seconds,
                         "mfu": mfu}  # fmt: skip

    # generate() on a sample, batched like naive (left padding, the same budget).
    chosen = flat[: min(sample, len(flat))]
    pad = judge.pad_id

    def generate_all() -> None:
        order = sorted(range(len(chosen)), key=lambda i: -len(chosen[i]))
        for batch in judge._batches(order, lambda i: len(chosen[i])):
            width = len(chosen[batch[0]])
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, width - len(chosen[i]) :] = torch.tensor(chosen[i])
                mask[row, width - len(chosen[i]) :] = 1
            with torch.inference_mode():
                model.generate(
                    input_ids=ids.to(args.device), attention_mask=mask.to(args.device),
                    max_new_tokens=2, min_new_tokens=2, do_sample=False, pad_token_id=pad,
                )  # fmt: skip

    generate_all()  # warm-up
    generate_time, _, _ = timed(generate_all)
    generate_rate = len(chosen) / generate_time
    print(
        f"generate: {generate_rate:10.1f} scores/s  (sample of {len(chosen)} prompts, 2 new tokens)"
    )
    figures["generate"] = {"scores_per_s": generate_rate, "sample": len(chosen)}
    speedup = naive_time / shared_time
    over_generate = (pairs / shared_time) / generate_rate
    print(f"shared-prefix speedup over naive batching: {speedup:.2f}x")
    print(f"shared-prefix speedup over generate(): {over_generate:.2f}x")
    print(f"largest |P_shared - P_naive|: {gap:.2e}")
    figures.update(
        {
            "speedup_shared_over_naive": speedup,
            "speedup_over_generate": over_generate,
            "max_gap": gap,
        }
    )
    if cuda:
        peak_memory = torch.cuda.max_memory_allocated() / 2**30
        print(f"peak GPU memory: {peak_memory:.1f} GiB")
        figures["peak_gpu_gib"] = peak_memory
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
