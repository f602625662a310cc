"""Losses and evaluation: label-word classification and prompt/completion causal-LM fine-tuning.

Classification scores the next-token logits of the task's label words after the prompt (only the last
position's logits are computed). Causal-LM loss covers the answer tokens only, with the model's chat
template around the prompt where the tokenizer has one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from fedseed.data.examples import Dataset, Example

IGNORE = -100


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor  # class indices (classification) or token targets (generation)
    size: int


class Objective:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, dataset: Dataset, max_length: int = 128,
                 device: str = "cpu") -> None:
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
            if len(set(self.label_ids)) != len(self.label_ids):
                raise ValueError(f"label words {dataset.label_words} share their first token; choose others")
        self.use_chat = getattr(tokenizer, "chat_template", None) is not None

    def _prompt_ids(self, ex: Example) -> list[int]:
        if self.classification or not self.use_chat:
            return self.tok.encode(ex.prompt, add_special_tokens=False)
        text = self.tok.apply_chat_template([{"role": "user", "content": ex.prompt}], tokenize=False,
                                            add_generation_prompt=True)
        return self.tok.encode(text, add_special_tokens=False)

    def encode(self, examples: list[Example]) -> Batch:
        """Left-padded batch; position ids follow the attention mask so padding changes nothing."""
        seqs, targets = [], []
        for ex in examples:
            prompt = self._prompt_ids(ex)
            if self.classification:
                seq = prompt[-self.max_length:]
                targets.append(ex.label)
            else:
                answer = self.tok.encode(ex.completion or "", add_special_tokens=False) + [self.tok.eos_token_id]
                seq = (prompt + answer)[-self.max_length:]
                n_ans = min(len(answer), len(seq))
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

    def class_logits(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                    position_ids=batch.position_ids, logits_to_keep=1)
        return out.logits[:, -1, self.label_ids].float()

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """Mean loss of the batch (cross-entropy over label words, or over answer tokens)."""
        if self.classification:
            return F.cross_entropy(self.class_logits(model, batch), batch.labels)
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
                total_loss += F.cross_entropy(logits, batch.labels, reduction="sum").item()
                correct += int((logits.argmax(-1) == batch.labels).sum())
            else:
                total_loss += self.loss(model, batch).item() * batch.size
            n += batch.size
        out = {"eval_loss": total_loss / max(n, 1)}
        if self.classification:
            out["eval_accuracy"] = correct / max(n, 1)
        elif rouge:
            out["eval_rougeL"] = self.rouge_l(model, examples, batch_size, max_new_tokens)
        return out

    def rouge_l(self, model: torch.nn.Module, examples: list[Example], batch_size: int, max_new_tokens: int) -> float:
        from fedseed.generation import greedy_generate, rouge_l

        scores = []
        for lo in range(0, len(examples), batch_size):
            chunk = examples[lo:lo + batch_size]
            prompts = [self._prompt_ids(ex)[-self.max_length:] for ex in chunk]
            outputs = greedy_generate(model, self.tok, prompts, max_new_tokens, self.device)
            scores += [rouge_l(o, ex.completion or "") for o, ex in zip(outputs, chunk)]
        return sum(scores) / max(len(scores), 1)
