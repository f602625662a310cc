"""The two-point zeroth-order (SPSA) step, in place, MeZO-style.

w += eps z; L+ ; w -= 2 eps z; L- ; g = (L+ - L-) / (2 eps); then one pass restores the weights and takes the
local step together: w += (eps - lr g) z for rademacher, w = (w + eps z) - lr g z for gaussian (the wide
state; the compact state perturbs the weights it streams, and steps its integers).
A non-finite loss skips the step (restoring the weights).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from fedseed.state import ModelState


@dataclass
class SpsaResult:
    g: float  # the projected gradient; 0.0 when skipped
    loss: float  # (L+ + L-) / 2
    skipped: bool


def spsa_scalar(state: ModelState, seed: int, eps: float, kind: str, loss_fn: Callable[[], float],
                lr: float = 0.0) -> SpsaResult:
    """Estimate g along z(seed) at the current weights; with lr > 0 also take the local step w -= lr g z (a step
    the state cannot hold is reported as skipped)."""
    state.perturb(seed, eps, kind)
    with torch.inference_mode():
        lp = float(loss_fn())
    state.perturb(seed, -2.0 * eps, kind)
    with torch.inference_mode():
        lm = float(loss_fn())
    g = (lp - lm) / (2.0 * eps)
    if not (math.isfinite(lp) and math.isfinite(lm) and math.isfinite(g)):
        state.perturb(seed, eps, kind)
        return SpsaResult(0.0, float("nan"), True)
    if not state.unperturb_and_step(seed, eps, -lr * g if lr else 0.0, kind):
        return SpsaResult(0.0, float("nan"), True)
    return SpsaResult(g, 0.5 * (lp + lm), False)
