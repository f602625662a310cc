"""A simulation stopped by Ctrl-C as a round starts, the way a user interrupts one."""

from __future__ import annotations

import pytest

from fedseed.config import Config
from fedseed.simulations import engine


def run_cut_at_round(monkeypatch: pytest.MonkeyPatch, cfg: Config, out: str, round_idx: int) -> None:
    """Run cfg into `out` until round `round_idx` starts, then interrupt it (its log holds the rounds before)."""
    real_round = engine.driver_round

    def crash(machine, fed, backend, r):  # noqa: ANN001, ANN202
        if r == round_idx:
            raise KeyboardInterrupt
        return real_round(machine, fed, backend, r)

    monkeypatch.setattr(engine, "driver_round", crash)
    with pytest.raises(KeyboardInterrupt):
        engine.simulate(cfg, out, progress=False)
    monkeypatch.undo()
