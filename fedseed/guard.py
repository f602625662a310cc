"""The divergence guard of a party holding the model: the loss of a few fixed held-out examples before and after
each round. A round that raises it past ``robust.divergence_factor`` times its value before the round, or makes it
non-finite, is flagged, and by
``robust.on_divergence`` rolled back; under "stop", or in a simulation after MAX_ROLLBACKS in a row, the run
then ends. The same
examples before and after make the ratio a measure of the update alone, not of sampling noise; a few examples
keep it cheap enough to run every round."""

from __future__ import annotations

import math
from collections.abc import Callable

from fedseed.robust import RobustSection

MAX_ROLLBACKS = 3  # rounds a simulation rolls back in a row before it ends: it cannot progress at its settings


class DivergenceGuard:
    def __init__(self, cfg: RobustSection, loss: Callable[[], float]) -> None:
        self.factor, self.loss = cfg.divergence_factor, loss
        self.reference: float | None = None  # the guard loss of the state the next round starts from
        self.previous: float | None = None
        self.rollbacks_in_a_row = 0

    def before(self) -> None:
        """Measure the starting state once (a fresh or resumed run); later rounds start from the last verdict."""
        if self.reference is None:
            self.reference = float(self.loss())

    def after(self) -> str:
        """Why the round just applied is implausible (empty: it is not). The new loss becomes the reference."""
        new = float(self.loss())
        self.previous, self.reference = self.reference, new
        ref = self.previous if self.previous is not None else new
        if not math.isfinite(new):
            return f"the guard loss went from {ref:.4g} to {new} (robust.divergence_factor {self.factor})"
        if new > self.factor * ref:
            return (f"the guard loss went from {ref:.4g} to {new:.4g}, x{new / max(ref, 1e-300):.3g} "
                    f"> robust.divergence_factor {self.factor}")
        self.rollbacks_in_a_row = 0
        return ""

    def rolled_back(self) -> None:
        """The round was undone: the state is the one measured before it."""
        self.reference = self.previous
        self.rollbacks_in_a_row += 1
