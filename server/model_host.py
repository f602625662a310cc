"""What the coordinator holds of the model: always its layout, fingerprint and the strategy; with hold_model,
the weights too, so the round machine applies every round to them (their checksum is the federation's
reference), evaluates, and a run can be exported."""

from __future__ import annotations

import gc

from fedseed.config import Config
from fedseed.federation import Federation, build_federation


class ModelHost:
    def __init__(self, cfg: Config, hold_model: bool) -> None:
        fed = build_federation(cfg)
        self.layout = fed.state.layout
        self.fingerprint = self.layout.fingerprint()
        self.base_checksum = fed.state.checksum()
        self.strategy = fed.strategy
        if not self.strategy.networked:
            raise ValueError(f"strategy {self.strategy.name} is a simulation-only baseline; it does not run over "
                             "the network")
        self.fed: Federation | None = fed if hold_model else None
        if not hold_model:
            del fed
            gc.collect()

    def evaluate(self) -> dict:
        return {} if self.fed is None else self.fed.evaluate()
