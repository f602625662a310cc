"""What the benchmark rows share: timing, the row record, and SmolLM2 with a batch of 8 x 128 tokens."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SMOLLM2_SIZE = 134_515_008  # trainable elements of SmolLM2-135M (the flat buffer is padded to 64)


@dataclass
class Row:
    name: str
    seconds: float | None  # the measured time (None for rows that are not times)
    ratio: float | None  # the figure the row exists for
    unit: str  # what `ratio` is, e.g. "x normal_+add_" or "of memcpy"
    baseline: str = ""  # the anchor it was measured against, side by side
    note: str = ""


def best_of(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """The fastest of `repeats` timed calls after `warmup` untimed ones (compilation, page faults)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def best_interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The fastest of `repeats` timed calls of each function, taken in rounds (one call of each per round),
    so that every candidate samples the same phases of a machine whose speed drifts."""
    for fn in fns.values():
        fn()  # warm-up
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def smollm2_batch(rows: int = 8, tokens: int = 128, device: str = "cpu") -> tuple[object, object, object]:
    """(model, objective, batch): SmolLM2-135M-Instruct and `rows` sentiment prompts of exactly `tokens`
    tokens each (several reviews joined, the last `tokens` kept), scored as the quickstart scores them."""
    from fedseed.data.examples import Example
    from fedseed.data.sources import load_sentiment
    from fedseed.models import SMOLLM2, load_model
    from fedseed.objective import Objective

    lm = load_model(SMOLLM2, device)
    for p in lm.model.parameters():
        p.requires_grad_(False)
    ds = load_sentiment()
    objective = Objective(lm.tokenizer, ds, tokens, device)
    examples, k = [], 0
    for _ in range(rows):
        text = ""
        while len(lm.tokenizer.encode(text, add_special_tokens=False)) <= tokens:
            text += ds.examples[k].prompt + "\n"
            k += 1
        examples.append(Example(prompt=text, label=ds.examples[k - 1].label))
    batch = objective.encode(examples)
    assert tuple(batch.input_ids.shape) == (rows, tokens), batch.input_ids.shape
    return lm.model, objective, batch


def llama_1b(seed: int = 0):
    """A randomly initialised Llama of TinyLlama-1.1B's shape (1.1B weights), fp32, built from its config."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                      num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                      tie_word_embeddings=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(torch.float32).eval()
