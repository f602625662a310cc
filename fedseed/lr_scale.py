"""A learning rate relative to the model's own scale. A zeroth-order step is lr * g * z, and how large g is
depends on the model (on the quickstart's guard examples Gemma 3 270M's median |g| is 406, SmolLM2's 39.4), so
an lr tuned on one model is a different step on another. With ``strategy.lr_relative`` the configured lr is the
median step coefficient lr * |g| instead: the party holding the model measures the median |g| of a few probes on
its guard examples at the run's base weights, and the run's lr is the configured lr divided by it. The
measurement is made once, before the first round, and kept in the round log, so a resumed run and every client
use the same lr."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

from fedseed.seeds import derive_seed
from fedseed.state import ModelState
from fedseed.zo import spsa_scalar

PROBES = 16  # two forwards each on the guard examples: about 35 s of the quickstart's 11 minutes on 2 cores
_PROBE_KEY = 0x15CA  # names the probes' directions, apart from every training seed


def median_abs_g(state: ModelState, loss: Callable[[], float], run_seed: int, eps: float, kind: str,
                 probes: int = PROBES) -> float:
    """The median |g| = |L(w + eps z) - L(w - eps z)| / (2 eps) over `probes` directions; the weights are left
    exactly as they were. ValueError when the probes cannot give a scale (non-finite or zero losses' slopes)."""
    gs = []
    for k in range(probes):
        res = spsa_scalar(state, derive_seed(run_seed, _PROBE_KEY, k), eps, kind, loss)
        if not res.skipped:
            gs.append(abs(res.g))
    state.restore()  # bit-exact weights: the perturbations' float round trips are not
    scale = statistics.median(gs) if gs else math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"strategy.lr_relative: {probes} probes at the base weights gave no usable |g| scale "
                         f"({len(gs)} finite, median {scale}); set an absolute strategy.lr instead")
    return scale
