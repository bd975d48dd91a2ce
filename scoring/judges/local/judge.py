"""Local judges: a causal LM read at the answer position, one forward pass, no generation.

P(yes) for a criterion is the softmax over the answer tokens at the position after the
prompt: P = Σ p(yes variants) / (Σ p(yes variants) + Σ p(no variants)), the variants being
every single-token spelling the tokenizer has ("yes", " yes", "Yes", " Yes"…). Pairwise,
P(A) is read the same way from the "A" and "B" tokens. The result is continuous and
deterministic: the same model and prompt give the same probability. Which tokens spell an
answer, and the reading from the two summed log-probabilities, are the rule of
``scoring.engine.answer_tokens``, shared with the OpenAI-compatible logprob judge.

Two ways to read many prompts, equal within float tolerance:

* ``score`` (naive): every prompt in full. Prompts are sorted by length and packed into
  batches under a token budget (rows × padded length), left-padded, with an attention mask
  and position ids that start at 0 on each prompt's first real token; the answer position
  is then the last column for every row.
* ``score_shared``: prompts grouped by a shared prefix (instructions + conversation +
  response). Each batch of prefixes is run once (right-padded, so no query row is fully
  masked), keeping its KV cache; then every suffix (a criterion and the question) is run
  against its prefix's cache — the cache rows are gathered per suffix — left-padded after
  the prefix's columns, with position ids continuing from the prefix's real length, so the
  answer is again the last column. Models with sliding-window attention are read in full
  (``uses_sliding_window``).

Logits come from the model's own forward (``logits_to_keep=1``), so final softcapping or
logit scaling is applied, and each batch is reduced at once to the two answer
log-probabilities: nothing vocabulary-sized outlives its batch.

Importing this module imports torch: only the ``gpu`` workers, the benchmark and the tests
do. The web process never imports ``scoring.judges.local`` beyond ``prompting``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from scoring.engine.answer_tokens import (
    LETTER_A,
    LETTER_B,
    NO,
    YES,
    Reading,
    is_spelling,
    reading,
    spellings,
)

__all__ = ["LocalJudge", "Reading", "answer_token_ids"]
# A suffix batch gathers one copy of its prefix's KV cache per row: keep that copy within
# this many times the token budget (rows × prefix length).
KV_ROWS_FACTOR = 4


def answer_token_ids(tokenizer: Any, words: Sequence[str]) -> tuple[int, ...]:
    """Ids of every single-token spelling of ``words``, bare and after a space (byte-level
    BPE writes " yes" as its own token; SentencePiece marks the space with "▁"). A token
    counts only if it decodes to one of those spellings (``answer_tokens.is_spelling``, the
    rule the logprob judge applies to a server's token texts): never an unknown-word or
    other special token."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids: set[int] = set()
    for word in words:
        for variant in spellings(word):
            encoded = tokenizer.encode(variant, add_special_tokens=False)
            if len(encoded) == 2 and tokenizer.decode(encoded[:1]).strip() == "":
                encoded = encoded[1:]  # a lone space token, then the word
            single = len(encoded) == 1 and encoded[0] not in special
            if single and is_spelling(tokenizer.decode(encoded), (word,)):
                ids.add(encoded[0])
    if not ids:
        raise ValueError(
            f"the tokenizer has no single token for {', '.join(repr(w) for w in words)}: "
            "this model cannot be read as a yes/no (or A/B) judge"
        )
    return tuple(sorted(ids))


def uses_sliding_window(config: Any) -> bool:
    """Whether some attention layer sees only a window of recent tokens. Its cache keeps
    the last window of the padded width, which loses a short prefix's real keys when
    prefixes of different lengths share a batch: such models are read in full instead."""
    if "sliding_attention" in (getattr(config, "layer_types", None) or []):
        return True
    window = getattr(config, "sliding_window", None)
    return bool(window) and getattr(config, "use_sliding_window", True) is not False


class LocalJudge:
    def __init__(self, model: Any, tokenizer: Any, *, batch_tokens: int = 16384) -> None:
        if batch_tokens < 1:
            raise ValueError("batch_tokens must be positive")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_tokens = batch_tokens
        self.device = next(model.parameters()).device
        self.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        self.vocab = model.get_output_embeddings().out_features
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self.shared_prefix = not uses_sliding_window(model.config)
        self.yes = answer_token_ids(tokenizer, YES)
        self.no = answer_token_ids(tokenizer, NO)
        self.letter_a = answer_token_ids(tokenizer, LETTER_A)
        self.letter_b = answer_token_ids(tokenizer, LETTER_B)
        for positive, negative in ((self.yes, self.no), (self.letter_a, self.letter_b)):
            if set(positive) & set(negative):
                raise ValueError("the tokenizer spells both answers with the same token")
        self._answers = {
            pairwise: (
                torch.tensor(positive, device=self.device),
                torch.tensor(negative, device=self.device),
            )
            for pairwise, (positive, negative) in (
                (False, (self.yes, self.no)),
                (True, (self.letter_a, self.letter_b)),
            )
        }
        self.tokens_run = 0  # prompt tokens through the model (padding excluded), for MFU

    # --- public -------------------------------------------------------------------------

    def score(self, prompts: Sequence[Sequence[int]], *, pairwise: bool = False) -> list[Reading]:
        """One reading per full prompt (token ids), in the given order."""
        if any(not p for p in prompts):
            raise ValueError("every prompt needs at least one token")
        self.check_fits(len(p) for p in prompts)
        return self._readings(self._naive([list(p) for p in prompts], pairwise))

    def score_shared(
        self,
        groups: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]],
        *,
        pairwise: bool = False,
    ) -> list[list[Reading]]:
        """For each (prefix, suffixes) group, one reading per prompt prefix + suffix."""
        for prefix, suffixes in groups:
            if not prefix or any(not s for s in suffixes):
                raise ValueError("a prefix and every suffix need at least one token")
        self.check_fits(len(p) + len(s) for p, suffixes in groups for s in suffixes)
        if self.shared_prefix:
            flat = self._readings(
                self._shared([(list(p), [list(s) for s in ss]) for p, ss in groups], pairwise)
            )
        else:
            flat = self.score(
                [list(p) + list(s) for p, ss in groups for s in ss], pairwise=pairwise
            )
        out, start = [], 0
        for _, suffixes in groups:
            out.append(flat[start : start + len(suffixes)])
            start += len(suffixes)
        return out

    def check_fits(self, lengths: Any) -> None:
        """ValueError when a prompt of these lengths is longer than the model allows."""
        longest = max(lengths, default=0)
        if self.max_positions and longest > self.max_positions:
            raise ValueError(
                f"a prompt of {longest} tokens is longer than the model's "
                f"{self.max_positions} positions"
            )

    # --- internals ----------------------------------------------------------------------

    def _answer_logprobs(self, logits: torch.Tensor, pairwise: bool) -> torch.Tensor:
        """[rows, 2]: log P(positive answers), log P(negative answers) from the logits at
        the answer position (the model's own final logits, softcapping and scaling
        included), in float32. Only these two numbers per prompt are kept."""
        positive, negative = self._answers[pairwise]
        logits = logits.float()
        total = torch.logsumexp(logits, dim=-1)
        return torch.stack(
            [
                torch.logsumexp(logits[:, positive], dim=-1) - total,
                torch.logsumexp(logits[:, negative], dim=-1) - total,
            ],
            dim=-1,
        )

    @staticmethod
    def _readings(logprobs: torch.Tensor) -> list[Reading]:
        """One reading per row of [log P(positive), log P(negative)]: the shared rule."""
        return [reading(positive, negative) for positive, negative in logprobs.tolist()]

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

    def _left_padded(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, tokens in enumerate(rows):
            ids[i, width - len(tokens) :] = torch.tensor(tokens)
            mask[i, width - len(tokens) :] = 1
            self.tokens_run += len(tokens)
        return ids.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def _naive(self, prompts: list[list[int]], pairwise: bool) -> torch.Tensor:
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out = torch.empty(len(prompts), 2, device=self.device)
        for batch in self._batches(order, lambda i: len(prompts[i])):
            ids, mask = self._left_padded([prompts[i] for i in batch])
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                logits_to_keep=1,
            ).logits[:, -1]  # fmt: skip
            out[torch.tensor(batch, device=self.device)] = self._answer_logprobs(logits, pairwise)
        return out

    @torch.inference_mode()
    def _shared(
        self, groups: list[tuple[list[int], list[list[int]]]], pairwise: bool
    ) -> torch.Tensor:
        from transformers import DynamicCache

        starts, total = [], 0
        for _, suffixes in groups:
            starts.append(total)
            total += len(suffixes)
        out = torch.empty(total, 2, device=self.device)
        order = sorted(range(len(groups)), key=lambda g: -len(groups[g][0]))
        for batch in self._batches(order, lambda g: len(groups[g][0])):
            # Prefixes right-padded: every query row sees at least its first token.
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
            cache = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                logits_to_keep=1,
            ).past_key_values  # fmt: skip
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
                # Suffixes left-padded after the prefix's columns (the padding is masked,
                # positions continue from each prefix's real length): the answer position
                # is the last column for every row.
                sids, smask = self._left_padded([items[k][0] for k in part])
                source = torch.tensor([items[k][1] for k in part], device=self.device)
                where = torch.tensor([items[k][2] for k in part], device=self.device)
                past = DynamicCache(ddp_cache_data=[(k[source], v[source]) for k, v in layers])
                spos = lengths[source, None] + (smask.cumsum(-1) - 1).clamp(min=0)
                logits = self.model(
                    input_ids=sids,
                    attention_mask=torch.cat([mask[source], smask], dim=-1),
                    position_ids=spos,
                    past_key_values=past,
                    use_cache=True,
                    logits_to_keep=1,
                ).logits[:, -1]
                out[where] = self._answer_logprobs(logits, pairwise)
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
