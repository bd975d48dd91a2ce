"""Local judges: a causal LM read at the answer position, one forward pass, no generation.

P(yes) for a criterion is the softmax over the answer tokens at the position after the
prompt: P = Σ p(yes variants) / (Σ p(yes variants) + Σ p(no variants)), the variants being
every single-token spelling the tokenizer has ("yes", " yes", "Yes", " Yes"…). Pairwise,
P(A) is read the same way from the "A" and "B" tokens. The result is continuous and
deterministic: the same model and prompt give the same probability.

Two ways to read many prompts, equal within float tolerance:

* ``score`` (naive): every prompt in full. Prompts are sorted by length and packed into
  batches under a token budget (rows × padded length), left-padded, with an attention mask
  and position ids that start at 0 on each prompt's first real token; the answer position
  is then the last column for every row.
* ``score_shared``: prompts grouped by a shared prefix (instructions + conversation +
  response). Each batch of prefixes is run once, keeping its KV cache; then every suffix
  (a criterion and the question) is run against its prefix's cache — the cache rows are
  gathered per suffix — with position ids continuing from the prefix's length. Prefixes
  and suffixes are right-padded (so no query row is fully masked) and the answer is read
  at each suffix's last real token.

Importing this module imports torch: only the ``gpu`` workers, the benchmark and the tests
do. The web process never imports ``scoring.local`` beyond ``prompting``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["LocalJudge", "answer_token_ids"]

YES = ("yes", "Yes", "YES")
NO = ("no", "No", "NO")
LETTER_A = ("A",)
LETTER_B = ("B",)
# A suffix batch gathers one copy of its prefix's KV cache per row: keep that copy within
# this many times the token budget (rows × prefix length).
KV_ROWS_FACTOR = 4


def answer_token_ids(tokenizer: Any, words: Sequence[str]) -> tuple[int, ...]:
    """Ids of every single-token spelling of ``words``, bare and after a space (byte-level
    BPE writes " yes" as its own token; SentencePiece marks the space with "▁")."""
    ids: set[int] = set()
    for word in words:
        for variant in (word, " " + word):
            encoded = tokenizer.encode(variant, add_special_tokens=False)
            if len(encoded) == 1:
                ids.add(encoded[0])
            elif len(encoded) == 2 and tokenizer.decode(encoded[:1]).strip() == "":
                ids.add(encoded[1])  # a lone space token, then the word
    if not ids:
        raise ValueError(
            f"the tokenizer has no single token for {', '.join(repr(w) for w in words)}: "
            "this model cannot be read as a yes/no (or A/B) judge"
        )
    return tuple(sorted(ids))


@dataclass(frozen=True)
class Reading:
    """What the model says at one answer position: P(positive) against the negative
    answer, and how much of the whole distribution the two answers hold (low mass: the
    model would rather say something else, and its P is less trustworthy)."""

    probability: float
    mass: float


class LocalJudge:
    def __init__(self, model: Any, tokenizer: Any, *, batch_tokens: int = 16384) -> None:
        if batch_tokens < 1:
            raise ValueError("batch_tokens must be positive")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_tokens = batch_tokens
        self.device = next(model.parameters()).device
        self.body = model.base_model  # the decoder without its LM head
        self.head = model.get_output_embeddings()
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self.yes = answer_token_ids(tokenizer, YES)
        self.no = answer_token_ids(tokenizer, NO)
        self.letter_a = answer_token_ids(tokenizer, LETTER_A)
        self.letter_b = answer_token_ids(tokenizer, LETTER_B)
        self.tokens_run = 0  # prompt tokens through the model (padding excluded), for MFU

    # --- public -------------------------------------------------------------------------

    def score(self, prompts: Sequence[Sequence[int]], *, pairwise: bool = False) -> list[Reading]:
        """One reading per full prompt (token ids), in the given order."""
        self.check_fits(len(p) for p in prompts)
        logits = self._naive_logits([list(p) for p in prompts])
        return self._readings(logits, pairwise)

    def score_shared(
        self,
        groups: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]],
        *,
        pairwise: bool = False,
    ) -> list[list[Reading]]:
        """For each (prefix, suffixes) group, one reading per prompt prefix + suffix."""
        self.check_fits(len(p) + len(s) for p, suffixes in groups for s in suffixes)
        for prefix, suffixes in groups:
            if not prefix or any(not s for s in suffixes):
                raise ValueError("a prefix and every suffix need at least one token")
        flat = self._shared_logits([(list(p), [list(s) for s in ss]) for p, ss in groups])
        readings = self._readings(flat, pairwise)
        out, start = [], 0
        for _, suffixes in groups:
            out.append(readings[start : start + len(suffixes)])
            start += len(suffixes)
        return out

    # --- internals ----------------------------------------------------------------------

    def check_fits(self, lengths: Any) -> None:
        """ValueError when a prompt of these lengths is longer than the model allows."""
        longest = max(lengths, default=0)
        if self.max_positions and longest > self.max_positions:
            raise ValueError(
                f"a prompt of {longest} tokens is longer than the model's "
                f"{self.max_positions} positions"
            )

    def _readings(self, logits: torch.Tensor, pairwise: bool) -> list[Reading]:
        """Answer probabilities from last-position logits [n, vocab], in float32."""
        if logits.shape[0] == 0:
            return []
        positive, negative = (self.letter_a, self.letter_b) if pairwise else (self.yes, self.no)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        pos = torch.logsumexp(logprobs[:, list(positive)], dim=-1)
        neg = torch.logsumexp(logprobs[:, list(negative)], dim=-1)
        probability = torch.sigmoid(pos - neg)
        mass = torch.exp(torch.logaddexp(pos, neg))
        return [
            Reading(float(p), float(m))
            for p, m in zip(probability.tolist(), mass.tolist(), strict=True)
        ]

    def _batches(self, order: list[int], length: Callable[[int], int]) -> list[list[int]]:
        """Consecutive runs of ``order`` (longest first) whose rows × longest length fit the
        token budget; a prompt longer than the budget goes alone."""
        batches: list[list[int]] = []
        for index in order:
            if batches and (len(batches[-1]) + 1) * length(batches[-1][0]) <= self.batch_tokens:
                batches[-1].append(index)
            else:
                batches.append([index])
        return batches

    @torch.inference_mode()
    def _naive_logits(self, prompts: list[list[int]]) -> torch.Tensor:
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out = torch.empty(len(prompts), self.head.out_features, device=self.device)
        for batch in self._batches(order, lambda i: len(prompts[i])):
            width = len(prompts[batch[0]])
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, index in enumerate(batch):
                tokens = prompts[index]
                ids[row, width - len(tokens) :] = torch.tensor(tokens)
                mask[row, width - len(tokens) :] = 1
                self.tokens_run += len(tokens)
            ids, mask = ids.to(self.device), mask.to(self.device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            hidden = self.body(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
            ).last_hidden_state
            out[batch] = self.head(hidden[:, -1]).float()
        return out

    @torch.inference_mode()
    def _shared_logits(self, groups: list[tuple[list[int], list[list[int]]]]) -> torch.Tensor:
        from transformers import DynamicCache

        starts, total = [], 0
        for _, suffixes in groups:
            starts.append(total)
            total += len(suffixes)
        out = torch.empty(total, self.head.out_features, device=self.device)
        order = sorted(range(len(groups)), key=lambda g: -len(groups[g][0]))
        for batch in self._batches(order, lambda g: len(groups[g][0])):
            width = len(groups[batch[0]][0])
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, g in enumerate(batch):
                prefix = groups[g][0]
                ids[row, : len(prefix)] = torch.tensor(prefix)
                mask[row, : len(prefix)] = 1
                self.tokens_run += len(prefix)
            ids, mask = ids.to(self.device), mask.to(self.device)
            positions = torch.arange(width, device=self.device).expand(len(batch), -1)
            cache = self.body(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True
            ).past_key_values
            layers = [(layer.keys, layer.values) for layer in cache.layers]
            lengths = mask.sum(-1)
            # Every suffix of this batch: (tokens, its prefix's row, its output index),
            # longest first.
            items = sorted(
                (
                    (suffix, row, starts[g] + s)
                    for row, g in enumerate(batch)
                    for s, suffix in enumerate(groups[g][1])
                ),
                key=lambda item: -len(item[0]),
            )
            for part in self._suffix_batches([len(item[0]) for item in items], width):
                span = len(items[part[0]][0])
                sids = torch.full((len(part), span), self.pad_id, dtype=torch.long)
                smask = torch.zeros((len(part), span), dtype=torch.long)
                for i, k in enumerate(part):
                    tokens = items[k][0]
                    sids[i, : len(tokens)] = torch.tensor(tokens)
                    smask[i, : len(tokens)] = 1
                    self.tokens_run += len(tokens)
                last = torch.tensor([len(items[k][0]) - 1 for k in part], device=self.device)
                where = torch.tensor([items[k][2] for k in part], device=self.device)
                source = torch.tensor([items[k][1] for k in part], device=self.device)
                past = DynamicCache(ddp_cache_data=[(k[source], v[source]) for k, v in layers])
                sids, smask = sids.to(self.device), smask.to(self.device)
                full_mask = torch.cat([mask[source], smask], dim=-1)
                spos = lengths[source, None] + torch.arange(span, device=self.device)
                hidden = self.body(
                    input_ids=sids,
                    attention_mask=full_mask,
                    position_ids=spos,
                    past_key_values=past,
                    use_cache=True,
                ).last_hidden_state
                picked = hidden[torch.arange(len(part), device=self.device), last]
                out[where] = self.head(picked).float()
        return out

    def _suffix_batches(self, lengths: list[int], prefix: int) -> list[list[int]]:
        """Suffix rows (``lengths`` longest first) within the token budget, and with their
        gathered prefix cache within KV_ROWS_FACTOR budgets."""
        most_rows = max(1, KV_ROWS_FACTOR * self.batch_tokens // max(prefix, 1))
        batches: list[list[int]] = []
        for k in range(len(lengths)):
            current = batches[-1] if batches else None
            if (
                current is not None
                and len(current) < most_rows
                and (len(current) + 1) * lengths[current[0]] <= self.batch_tokens
            ):
                current.append(k)
            else:
                batches.append([k])
        return batches
