"""One zeroth-order step on SmolLM2 (batch 8 x 128) against two forward passes, the floor of any two-point
estimate: the step adds three perturbation passes over the 134.5M fp32 weights (+eps z, -2 eps z, and one
that restores and steps at once)."""

from __future__ import annotations

import torch
from common import Row, best_interleaved, best_of

from fedseed.directions import DirectionEngine
from fedseed.layout import build_layout, model_checksum
from fedseed.state import FlatState
from fedseed.zo import spsa_scalar


def flat_state(model: torch.nn.Module) -> FlatState:
    layout = build_layout(model, None, model_checksum(model))
    return FlatState(model, layout, DirectionEngine("compiled"))


def zo_rows(model: torch.nn.Module, objective, batch, repeats: int, kinds: tuple[str, ...]) -> list[Row]:
    state = flat_state(model)

    def forward() -> None:
        with torch.inference_mode():
            objective.loss(model, batch)

    fns = {"forward": forward}
    for kind in kinds:
        fns[kind] = lambda k=kind: spsa_scalar(state, 7, 1e-3, k, lambda: objective.loss(model, batch), lr=1e-6)
    t = best_interleaved(fns, repeats)
    t_fwd = t["forward"]
    shape = "x".join(str(d) for d in batch.input_ids.shape)
    rows = [Row(f"forward pass, SmolLM2, batch {shape}", t_fwd, None, "", "", "baseline")]
    for kind in kinds:
        rows.append(Row(f"zeroth-order step, {kind} (2 forwards + 3 passes)", t[kind], t[kind] / (2 * t_fwd),
                        "x", "2 x forward"))
    state.restore()
    return rows


def bf16_rows(model: torch.nn.Module, objective, batch, repeats: int, seeds: int = 8) -> list[Row]:
    """bf16 autocast forwards over the fp32 master weights: their speed, and the error they add to the
    two-point loss difference L(w + eps z) - L(w - eps z) that a ZO step turns into its gradient."""
    state = flat_state(model)
    eps = 1e-3

    def loss(bf16: bool) -> float:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return float(objective.loss(model, batch))

    t32 = best_of(lambda: loss(False), repeats)
    t16 = best_of(lambda: loss(True), repeats)
    diffs32, errors = [], []
    for seed in range(seeds):
        state.engine.perturb(state.w, 0, seed, eps, "rademacher")
        plus = (loss(False), loss(True))
        state.engine.perturb(state.w, 0, seed, -2 * eps, "rademacher")
        minus = (loss(False), loss(True))
        state.restore()
        diffs32.append(abs(plus[0] - minus[0]))
        errors.append(abs((plus[1] - minus[1]) - (plus[0] - minus[0])))
    mean32 = sum(diffs32) / seeds
    mean_err = sum(errors) / seeds
    return [Row("forward pass, bf16 autocast (fp32 master weights)", t16, t32 / t16, "x faster", "fp32 forward"),
            Row("bf16 error in L+ - L- (eps 1e-3, Rademacher)", None, mean_err / mean32, "of the fp32 difference",
                "fp32 forwards", f"mean over {seeds} seeds")]
