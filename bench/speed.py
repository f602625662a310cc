"""Direction-kernel speed against its anchors, measured side by side in one run on this machine's CPU.

    .venv/bin/python bench/speed.py [--size N] [--repeats R]

Rows (each names its baseline; ratios, not absolute times alone):
  * memcpy: copying the fp32 buffer (read + write of 4 B per weight), the machine's bandwidth anchor;
  * one-seed perturb, compiled, per direction kind: vs ``Tensor.normal_`` + ``add_`` on the same weights, and
    as a fraction of memcpy (perturb also reads and writes 4 B per weight);
  * one zeroth-order step on SmolLM2 (batch of 8 reviews) vs 2 x its forward pass (the floor: two losses).
The buffer defaults to SmolLM2-135M's trainable size. The n-seed rebuild and memory rows of the full suite
are still to come.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fedseed.directions import DirectionEngine  # noqa: E402

SMOLLM2_SIZE = 134_515_008


def best_of(fn: Callable[[], None], repeats: int) -> float:
    fn()  # warm-up (compilation, page faults)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def zo_rows(repeats: int) -> list[tuple[str, float, str, str]]:
    from fedseed.config import load_config
    from fedseed.simulations.inline import build_federation
    from fedseed.zo import spsa_scalar

    cfg = load_config("simulations/quickstart.toml", ["model.max_length=128"])
    fed = build_federation(cfg)
    batch = fed.objective.encode([fed.dataset.examples[i] for i in fed.shards[0][:8]])
    model, state = fed.lm.model, fed.state

    def forward() -> None:
        with torch.inference_mode():
            fed.objective.loss(model, batch)

    def step() -> None:
        spsa_scalar(state, 7, 1e-3, "rademacher", lambda: fed.objective.loss(model, batch), lr=1e-6)

    t_fwd = best_of(forward, repeats)
    t_step = best_of(step, repeats)
    state.restore()
    shape = "x".join(str(d) for d in batch.input_ids.shape)
    return [(f"forward, SmolLM2, batch {shape}", t_fwd, "", ""),
            ("zeroth-order step (2 forwards + 3 passes)", t_step, f"{t_step / (2 * t_fwd):.2f} x 2 forwards", "")]


def kernel_rows(n: int, repeats: int) -> list[tuple[str, float, str, str]]:
    w = torch.randn(n) * 0.05
    dst = torch.empty_like(w)
    noise = torch.empty_like(w)
    engine = DirectionEngine("compiled")
    t_copy = best_of(lambda: dst.copy_(w), repeats)
    rows = [("memcpy (fp32 copy)", t_copy, f"{2 * 4 * n / 1e9 / t_copy:.1f} GB/s", "")]

    def normal_add() -> None:
        noise.normal_()
        w.add_(noise, alpha=1e-3)

    t_base = best_of(normal_add, repeats)
    rows.append(("normal_ + add_ (baseline)", t_base, "", ""))
    for kind in ("rademacher", "gaussian"):
        t = best_of(lambda k=kind: engine.perturb(w, 0, 12345, 1e-3, k), repeats)
        rows.append((f"perturb, {kind}, compiled", t, f"{t_base / t:.1f}x normal_+add_",
                     f"{t_copy / t:.2f} of memcpy"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=SMOLLM2_SIZE)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    n = args.size - args.size % 64
    rows = kernel_rows(n, args.repeats) + zo_rows(args.repeats)
    print(f"{n:,} fp32 weights, {torch.get_num_threads()} threads, best of {args.repeats}")
    for name, t, a, b in rows:
        print(f"{name:42s} {1000 * t:9.1f} ms  {a:22s} {b}")


if __name__ == "__main__":
    main()
