"""Losses and evaluation: label-word classification and prompt/completion causal-LM fine-tuning.

Classification scores the next-token logits of the task's label words after the prompt (only the last
position's logits are computed). Causal-LM loss covers the answer tokens only, with the model's chat
template around the prompt where the tokenizer has one. A prompt opens with the tokenizer's start tokens
(BOS where it adds one) unless the chat template, which holds its own, wraps it. See docs/data.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from fedseed.data.examples import Dataset, Example

IGNORE = -100


def start_tokens(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The special tokens the tokenizer puts before a text (e.g. Llama's BOS; none for SmolLM2). Tokens it puts
    after one (an EOS some tokenizers append) are left out: a label word or an answer follows the prompt."""
    plain = tokenizer.encode("a", add_special_tokens=False)
    full = tokenizer.encode("a", add_special_tokens=True)
    for at in range(len(full) - len(plain) + 1):
        if full[at:at + len(plain)] == plain:
            return full[:at]
    return []


def check_distinct(tokenizer: PreTrainedTokenizerBase, words: list[str], first_ids: list[int]) -> None:
    """Classification scores each label word by its first token only, so two words opening alike are refused."""
    for i, a in enumerate(first_ids):
        if a in first_ids[:i]:
            j = first_ids.index(a)
            raise ValueError(f"label words {words[j]!r} and {words[i]!r} both start with token {a} "
                             f"({tokenizer.decode([a])!r}); each word is scored by its first token, so these must "
                             "differ: choose other words")


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor  # class indices (classification) or token targets (generation)
    size: int


LossFn = Callable[[torch.nn.Module, "Batch"], torch.Tensor]


class Objective:
    """How examples become batches and a loss. `loss_fn(model, batch)`, when given, replaces the built-in loss
    for training and for eval_loss (accuracy still scores the label words)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, dataset: Dataset, max_length: int = 128,
                 device: str = "cpu", loss_fn: LossFn | None = None, autocast: torch.dtype | None = None) -> None:
        self.loss_fn = loss_fn
        self.autocast = autocast  # the dtype of mixed-precision forwards (None: as the weights are)
        self.tok = tokenizer
        self.max_length = max_length
        self.device = device
        self.classification = dataset.is_classification
        self.label_ids: list[int] = []
        if self.classification:
            for word in dataset.label_words:
                ids = tokenizer.encode(word, add_special_tokens=False)
                if not ids:
                    raise ValueError(f"label word {word!r} tokenizes to nothing")
                self.label_ids.append(ids[0])
            check_distinct(tokenizer, dataset.label_words, self.label_ids)
        self.use_chat = getattr(tokenizer, "chat_template", None) is not None
        # a chat template writes its own special tokens into the text; plain text gets the tokenizer's
        self.start_ids = [] if self.use_chat and not self.classification else start_tokens(tokenizer)
        if max_length <= len(self.start_ids):
            raise ValueError(f"max_length {max_length} leaves no room after the start tokens {self.start_ids}")

    def _prompt_ids(self, ex: Example) -> list[int]:
        if self.classification or not self.use_chat:
            ids = self.tok.encode(ex.prompt, add_special_tokens=False)
            # a text that already opens with the start tokens (written out by the user) keeps one copy
            return ids if ids[:len(self.start_ids)] == self.start_ids else self.start_ids + ids
        text = self.tok.apply_chat_template([{"role": "user", "content": ex.prompt}], tokenize=False,
                                            add_generation_prompt=True)
        return self.tok.encode(text, add_special_tokens=False)

    def _fit(self, seq: list[int]) -> list[int]:
        """The last max_length tokens, except that the start tokens (e.g. BOS) stay in front."""
        if len(seq) <= self.max_length:
            return seq
        keep = len(self.start_ids)
        return seq[:keep] + seq[len(seq) - (self.max_length - keep):]

    def encode(self, examples: list[Example]) -> Batch:
        """Left-padded batch; position ids follow the attention mask so padding changes nothing."""
        seqs, targets = [], []
        for ex in examples:
            prompt = self._prompt_ids(ex)
            if self.classification:
                seq = self._fit(prompt)
                targets.append(ex.label)
            else:
                answer = self.tok.encode(ex.completion or "", add_special_tokens=False) + [self.tok.eos_token_id]
                seq = self._fit(prompt + answer)
                n_ans = min(len(answer), len(seq) - len(self.start_ids))  # start tokens are never targets
                targets.append([IGNORE] * (len(seq) - n_ans) + seq[len(seq) - n_ans:])
            seqs.append(seq)
        width = max(len(s) for s in seqs)
        pad = self.tok.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        labels = (torch.tensor(targets, dtype=torch.long) if self.classification
                  else torch.full((len(seqs), width), IGNORE, dtype=torch.long))
        for r, seq in enumerate(seqs):
            ids[r, width - len(seq):] = torch.tensor(seq)
            mask[r, width - len(seq):] = 1
            if not self.classification:
                labels[r, width - len(seq):] = torch.tensor(targets[r])
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        d = self.device
        return Batch(ids.to(d), mask.to(d), pos.to(d), labels.to(d), len(seqs))

    def _forward(self) -> contextlib.AbstractContextManager:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=self.autocast)

    def class_logits(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        with self._forward():
            out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                        position_ids=batch.position_ids, logits_to_keep=1)
        return out.logits[:, -1, self.label_ids].float()

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """Mean loss of the batch (cross-entropy over label words, or over answer tokens)."""
        if self.loss_fn is not None:
            with self._forward():
                return self.loss_fn(model, batch)
        if self.classification:
            return F.cross_entropy(self.class_logits(model, batch), batch.labels)
        with self._forward():
            out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                        position_ids=batch.position_ids)
        logits = out.logits[:, :-1].float()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.labels[:, 1:].reshape(-1),
                               ignore_index=IGNORE)

    @torch.inference_mode()
    def evaluate(self, model: torch.nn.Module, examples: list[Example], batch_size: int = 32, rouge: bool = False,
                 max_new_tokens: int = 32) -> dict[str, float]:
        """eval_loss (example-weighted); eval_accuracy for classification; eval_rougeL (greedy generation scored
        by Rouge-L F) for prompt/completion data when `rouge` is set."""
        total_loss, correct, n = 0.0, 0, 0
        for lo in range(0, len(examples), batch_size):
            batch = self.encode(examples[lo:lo + batch_size])
            if self.classification:
                logits = self.class_logits(model, batch)
                correct += int((logits.argmax(-1) == batch.labels).sum())
            if self.classification and self.loss_fn is None:
                total_loss += F.cross_entropy(logits, batch.labels, reduction="sum").item()
            else:
                total_loss += self.loss(model, batch).item() * batch.size
            n += batch.size
        out = {"eval_loss": total_loss / max(n, 1)}
        if self.classification:
            out["eval_accuracy"] = correct / max(n, 1)
        elif rouge:
            with self._forward():
                out["eval_rougeL"] = self.rouge_l(model, examples, batch_size, max_new_tokens)
        return out

    def rouge_l(self, model: torch.nn.Module, examples: list[Example], batch_size: int, max_new_tokens: int) -> float:
        from fedseed.generation import greedy_generate, rouge_l

        scores = []
        for lo in range(0, len(examples), batch_size):
            chunk = examples[lo:lo + batch_size]
            prompts = [self._fit(self._prompt_ids(ex)) for ex in chunk]
            outputs = greedy_generate(model, self.tok, prompts, max_new_tokens, self.device)
            scores += [rouge_l(o, ex.completion or "") for o, ex in zip(outputs, chunk)]
        return sum(scores) / max(len(scores), 1)
