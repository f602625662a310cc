"""Rebuilding an n-seed update of SmolLM2's size: one many-seed pass against n one-seed passes and against
the FedKSeed-style loop (torch.manual_seed(seed), then randn_like + add_ per parameter per seed).

The two baselines cost exactly n times one seed's work, so they are timed on a few seeds and scaled to n
(each row says how many); the many-seed pass is timed on all n. Each figure is the best of a few runs, as
in every other row.
"""

from __future__ import annotations

import numpy as np
import torch
from common import Row, best_of

from fedseed.directions import DirectionEngine, coef_to_int


def _fedkseed_loop(params: list[torch.Tensor], seeds: list[int], coefs: list[float]) -> None:
    for seed, c in zip(seeds, coefs):
        torch.manual_seed(seed)
        for p in params:
            p.add_(torch.randn_like(p), alpha=c)


def rebuild_rows(shapes: list[tuple[int, ...]], n: int, kind: str, baseline_seeds: int = 4, repeats: int = 3,
                 many_repeats: int = 2, device: str = "cpu") -> list[Row]:
    size = sum(int(np.prod(s)) for s in shapes)
    size += -size % 64
    rng = np.random.default_rng(0)
    seeds = [int(s) for s in rng.integers(0, 2**62, n)]
    coefs = [float(c) for c in rng.normal(0.0, 1e-6, n)]  # lr x projected gradient, the usual scale
    ints = [coef_to_int(c, kind) for c in coefs]
    engine = DirectionEngine("compiled")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    engine.accumulate_many(torch.zeros(8192 * 2 + 64, dtype=torch.int64, device=device), 0, seeds, ints, kind)
    delta = torch.zeros(size, dtype=torch.int64, device=device)
    engine.accumulate(delta, 0, seeds[0], ints[0], kind)  # compile + page in
    sync()

    def singles() -> None:
        for s, c in zip(seeds[:baseline_seeds], ints[:baseline_seeds]):
            engine.accumulate(delta, 0, s, c, kind)
        sync()

    t_single = best_of(singles, repeats, warmup=0) / baseline_seeds * n
    t_many = best_of(lambda: (engine.accumulate_many(delta, 0, seeds, ints, kind), sync()), many_repeats, warmup=0)
    delta = torch.empty(0, dtype=torch.int64)  # free the buffer before the loop allocates its own

    params = [torch.zeros(s, device=device) for s in shapes]

    def loop() -> None:
        _fedkseed_loop(params, seeds[:baseline_seeds], coefs[:baseline_seeds])
        sync()

    t_loop = best_of(loop, repeats) / baseline_seeds * n
    params = []
    scaled = f"timed on {baseline_seeds} seeds, x {n / baseline_seeds:g}"
    name = f"{n}-seed rebuild, {kind}, one pass ({size:,} weights)"
    return [Row(f"FedKSeed-style loop, {n} seeds ({kind} stand-in: randn)", t_loop, None, "", "", scaled),
            Row(f"{n} one-seed fused passes, {kind}", t_single, None, "", "", scaled),
            Row(name, t_many, t_loop / t_many, "x faster", "FedKSeed-style loop"),
            Row(name, t_many, t_single / t_many, "x faster", f"{n} one-seed fused passes")]
