"""Scoring generations: greedy decoding of held-out prompts and Rouge-L F against the reference answer.

Rouge-L is the `rouge` package's `rouge-l` F value averaged over examples, with an empty output scoring 0,
which is how FedKSeed and Ferret score Natural Instructions and Dolly.
"""

from __future__ import annotations

import torch
from rouge import Rouge
from transformers import PreTrainedTokenizerBase

_ROUGE = Rouge()


def rouge_l(hypothesis: str, reference: str) -> float:
    """Rouge-L F of one generation; 0 when either side has no words (the package refuses those)."""
    if not hypothesis.strip() or not reference.strip():
        return 0.0
    try:
        return float(_ROUGE.get_scores(hypothesis, reference)[0]["rouge-l"]["f"])
    except (ValueError, RecursionError):  # e.g. text of punctuation only, which the package's tokenizer drops
        return 0.0


@torch.inference_mode()
def greedy_generate(model: torch.nn.Module, tok: PreTrainedTokenizerBase, prompts: list[list[int]],
                    max_new_tokens: int, device: str = "cpu") -> list[str]:
    """Greedy continuations of left-padded token-id prompts, decoded without special tokens."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):] = torch.tensor(p)
        mask[r, width - len(p):] = 1
    out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                         do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return [tok.decode(row[width:], skip_special_tokens=True).strip() for row in out]
