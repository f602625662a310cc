"""What the coordinator holds of the model: always its layout and fingerprint; with hold_model, the weights
too, so it applies every round (its checksum is the federation's reference), evaluates and can export."""

from __future__ import annotations

import gc

from fedseed.config import Config
from fedseed.replay import catch_up
from fedseed.simulations.federation import Federation, build_federation
from fedseed.strategies.base import ClientResult, GlobalUpdate, RoundPlan


class ModelHost:
    def __init__(self, cfg: Config, hold_model: bool) -> None:
        fed = build_federation(cfg)
        self.cfg = cfg
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

    def catch_up(self, updates: list[GlobalUpdate], expected_checksum: str) -> None:
        if self.fed is None or not updates:
            return
        catch_up(self.fed.state, updates)
        if expected_checksum and self.fed.state.checksum() != expected_checksum:
            raise ValueError(f"the model rebuilt from the log does not match round {updates[-1].round}'s checksum")

    def evaluate(self) -> dict:
        if self.fed is None:
            return {}
        f = self.fed
        return f.evaluate()

    def close_round(self, plan: RoundPlan, results: list[ClientResult], last: bool) -> tuple[GlobalUpdate, str, dict]:
        """Aggregate, update coordinator-side strategy state, and (holding the model) apply and evaluate."""
        update = self.strategy.aggregate(plan, results)
        self.strategy.observe(plan, results)
        if self.fed is None:
            return update, "", {}
        self.strategy.apply(self.fed.state, update)
        due = plan.round % self.cfg.eval.every == 0 or last
        return update, self.fed.state.checksum(), self.evaluate() if due else {}
