"""One zeroth-order step on SmolLM2 (batch 8 x 128) against two forward passes, the floor of any two-point
estimate. The wide state's step adds three perturbation passes over the 134.5M fp32 weights (+eps z, -2 eps z,
and one that restores and steps at once); the compact state's forwards materialise their weights with the
perturbation on the fly, and its step adds one int32 pass. Compact rows are measured in fp32 and bf16, each
against forwards of an inference model in the same dtype."""

from __future__ import annotations

import copy

import torch
from common import Row, best_interleaved

from fedseed.directions import DirectionEngine
from fedseed.layout import build_layout, model_checksum
from fedseed.state import FlatState, build_state
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


def _compact_times(load, name: str, repeats: int) -> tuple[dict[str, float], str]:
    model, objective, batch = load()
    plain = copy.deepcopy(model)
    dtype = getattr(torch, name)
    objective.autocast = None if dtype == torch.float32 else dtype  # as a run's forwards compute in that dtype
    state = build_state("compact", model, build_layout(model, None, model_checksum(model)),
                        DirectionEngine("compiled"), dtype)

    def forward() -> None:
        with torch.inference_mode():
            objective.loss(plain, batch)

    def step() -> None:
        spsa_scalar(state, 7, 1e-3, "rademacher", lambda: objective.loss(model, batch), lr=1e-6)

    return best_interleaved({"forward": forward, "step": step}, repeats), "x".join(map(str, batch.input_ids.shape))


def compact_zo_rows(load, dtypes: tuple[str, ...], repeats: int) -> list[Row]:
    """`load()` gives a fresh (model, objective, batch); per dtype, a compact state's step against two forwards
    of the same model held as plain fp32 weights, both autocast to that dtype, timed in alternation."""
    rows, forwards = [], {}
    for name in dtypes:
        t, shape = _compact_times(load, name, repeats)
        forwards[name] = t["forward"]
        rows += [Row(f"forward pass, {name} forwards, batch {shape}", t["forward"], None, "", "", "baseline"),
                 Row(f"zeroth-order step, compact state, {name} forwards", t["step"], t["step"] / (2 * t["forward"]),
                     "x", f"2 x {name} forward")]
    for name in forwards.keys() - {"float32"} if "float32" in forwards else ():
        rows.append(Row(f"forward pass, {name} against float32", forwards[name], forwards["float32"] / forwards[name],
                        "x faster", "float32 forward"))
    return rows


def bf16_rows(model: torch.nn.Module, objective, batch, repeats: int, seeds: int = 8) -> list[Row]:
    """bf16 autocast forwards over the fp32 master weights: their speed, and the error they add to the
    two-point loss difference L(w + eps z) - L(w - eps z) that a ZO step turns into its gradient."""
    state = flat_state(model)
    eps = 1e-3

    def loss(bf16: bool) -> float:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return float(objective.loss(model, batch))

    held = copy.deepcopy(model).to(torch.bfloat16)

    def held_loss() -> None:
        with torch.inference_mode():
            objective.loss(held, batch)

    t = best_interleaved({"fp32": lambda: loss(False), "autocast": lambda: loss(True), "held": held_loss}, repeats)
    t32, t16 = t["fp32"], t["autocast"]
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
            Row("forward pass, the model held in bf16 (no autocast)", t["held"], t32 / t["held"], "x faster",
                "fp32 forward"),
            Row("bf16 error in L+ - L- (eps 1e-3, Rademacher)", None, mean_err / mean32, "of the fp32 difference",
                "fp32 forwards", f"mean over {seeds} seeds")]
