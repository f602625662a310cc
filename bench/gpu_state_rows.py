"""The compact state on CUDA: bit identity with the CPU, materialising bandwidth, step time and memory.

Rows for bench/gpu.py (run only where a CUDA device is visible):
  * a CompactState of SmolLM2 on CUDA and on the CPU, after one many-seed update, one local step and one
    perturbation: equal checksums and equal materialised weights;
  * one perturbed materialising pass over all the weights (read int32, write fp32) against a device copy of the
    same bytes (goal >= 0.7);
  * a zeroth-order step of the compact state against two forwards of an inference model, fp32 and bf16, batch
    16 x 128 (goal <= 1.15);
  * client peak memory (torch.cuda.max_memory_allocated after loading) against inference on the same batch.
"""

from __future__ import annotations

import numpy as np
import torch
from common import Row, best_of, smollm2_batch
from zo_rows import compact_zo_rows

from fedseed import compact_kernels as ck
from fedseed.directions import DirectionEngine
from fedseed.layout import build_layout, model_checksum
from fedseed.state import build_state
from fedseed.strategies.base import GlobalUpdate
from fedseed.zo import spsa_scalar


def _compact_smollm2(device: str, backend: str = "compiled"):
    model, objective, batch = smollm2_batch(16, 128, device)
    layout = build_layout(model, None, model_checksum(model))
    return build_state("compact", model, layout, DirectionEngine(backend)), objective, batch


def identity_rows() -> tuple[list[Row], bool]:
    rng = np.random.default_rng(0)
    update = GlobalUpdate(1, "rademacher", rng.integers(0, 2**62, 64).astype(np.int64),
                          (rng.standard_normal(64) * 3e-4).astype(np.float32))
    sums, weights = [], []
    for device, backend in (("cpu", "eager"), ("cuda", "compiled")):
        state, _, _ = _compact_smollm2(device, backend)
        state.apply_rounds([update])
        state.step(11, -2e-5, "rademacher")
        state.perturb(12, 1e-3, "rademacher")
        sums.append(state.checksum())
        weights.append(state.weights(0, state.layout.size, state.perturbation).cpu())
        del state
    ok = sums[0] == sums[1] and torch.equal(weights[0], weights[1])
    return [Row("compact state CUDA (compiled) = CPU (eager): checksum and perturbed weights", None, float(ok),
                "(1 = bit-identical)", "", sums[1])], ok


def bandwidth_rows(repeats: int) -> list[Row]:
    state, _, _ = _compact_smollm2("cuda")
    n = state.layout.size
    out = torch.empty(n, device="cuda")
    src, dst = torch.empty(2 * n, device="cuda"), torch.empty(2 * n, device="cuda")  # 8 B per weight, as below

    def copy() -> None:
        dst.copy_(src)
        torch.cuda.synchronize()

    def materialize() -> None:
        for g in state.segments:
            ck.materialize(out[g.lo:g.hi], state.q[g.lo:g.hi], g.lo, g.exponent, (5, 1e-3), "compiled")
        torch.cuda.synchronize()

    t_copy, t_mat = best_of(copy, repeats), best_of(materialize, repeats)
    return [Row("device copy (8 B per weight)", t_copy, 16 * n / t_copy / 1e9, "GB/s"),
            Row("compact perturbed materialise, all weights (int32 in, fp32 out)", t_mat, t_copy / t_mat,
                "of device copy", "device copy", f"{len(state.segments)} segments")]


def step_rows(repeats: int) -> list[Row]:
    return compact_zo_rows(lambda: smollm2_batch(16, 128, "cuda"), ("float32", "bfloat16"), repeats)


def _peak(mode: str) -> int:
    """max_memory_allocated while working, counted from after the model is loaded (the loaded model included)."""
    torch.cuda.empty_cache()
    if mode == "inference":
        model, objective, batch = smollm2_batch(16, 128, "cuda")
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            objective.loss(model, batch)
    else:
        state, objective, batch = _compact_smollm2("cuda")
        spsa_scalar(state, 1, 1e-3, "rademacher", lambda: objective.loss(state.model, batch), lr=1e-6)  # compile
        torch.cuda.reset_peak_memory_stats()
        spsa_scalar(state, 2, 1e-3, "rademacher", lambda: objective.loss(state.model, batch), lr=1e-6)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def memory_rows() -> list[Row]:
    mib = 2**20
    inference, compact = _peak("inference"), _peak("compact")
    return [Row("inference max_memory_allocated, SmolLM2, batch 16x128", None, inference / mib, "MiB"),
            Row("ZO client max_memory_allocated, compact state", None, compact / inference, "x", "inference",
                f"{compact / mib:.0f} MiB")]
