"""What the coordinator holds of the model: always its layout and fingerprint; with hold_model, the weights
too, so it applies every round (its checksum is the federation's reference), evaluates and can export.

It also keeps the running bound of max |delta| that every party's fixed-point state keeps (the sum over
applied rounds of what each could add), so an update that would take any party's state past its limit is
refused here, before it is logged, whether or not the weights are held.
"""

from __future__ import annotations

import gc
import sys
import traceback

import numpy as np

from fedseed.config import Config
from fedseed.directions import MAX_ABS_COEF
from fedseed.replay import catch_up
from fedseed.simulations.federation import Federation, build_federation
from fedseed.state import DELTA_BOUND_LIMIT, seed_growth
from fedseed.strategies.base import ClientResult, GlobalUpdate, RoundPlan


class ModelHost:
    def __init__(self, cfg: Config, hold_model: bool) -> None:
        fed = build_federation(cfg)
        self.cfg = cfg
        self.layout = fed.state.layout
        self.fingerprint = self.layout.fingerprint()
        self.base_checksum = fed.state.checksum()
        self.strategy = fed.strategy
        self.delta_bound = 0
        if not self.strategy.networked:
            raise ValueError(f"strategy {self.strategy.name} is a simulation-only baseline; it does not run over "
                             "the network")
        self.fed: Federation | None = fed if hold_model else None
        if not hold_model:
            del fed
            gc.collect()

    def catch_up(self, updates: list[GlobalUpdate], expected_checksum: str) -> None:
        for u in updates:
            self.delta_bound += self.growth(u)
        if self.fed is None or not updates:
            return
        catch_up(self.fed.state, updates)
        if expected_checksum and self.fed.state.checksum() != expected_checksum:
            raise ValueError(f"the model rebuilt from the log does not match round {updates[-1].round}'s checksum")

    @staticmethod
    def growth(update: GlobalUpdate) -> int:
        return 0 if update.dense is not None else seed_growth(update.coef_ints(), update.kind)

    def evaluate(self) -> dict:
        if self.fed is None:
            return {}
        f = self.fed
        return f.evaluate()

    def aggregate_checked(self, plan: RoundPlan, results: list[ClientResult]) -> GlobalUpdate:
        """The round's update, or ValueError when any party could not apply it (a coefficient out of range, or
        the state's bound exceeded). Changes nothing."""
        update = self.strategy.aggregate(plan, results)
        big = np.abs(update.coefs) > MAX_ABS_COEF
        if big.any():
            k = int(np.argmax(big))
            what = "" if update.pool_indices is None else f" (pool index {update.pool_indices[k]})"
            raise ValueError(f"the round's coefficient on seed {update.seeds[k]}{what} would be {update.coefs[k]:.4g}, "
                             f"beyond the bound {MAX_ABS_COEF} (the sum of this result's scalars on one seed)")
        if self.delta_bound + self.growth(update) >= DELTA_BOUND_LIMIT:
            raise ValueError("the update would take the fixed-point state past its bound (the run's coefficients "
                             "sum to more than the state can hold)")
        return update

    def admissible(self, plan: RoundPlan, results: list[ClientResult]) -> tuple[list[ClientResult], dict[int, str]]:
        """Results kept in client order while the round stays aggregable, and why each other one was dropped."""
        kept: list[ClientResult] = []
        dropped: dict[int, str] = {}
        for res in results:
            try:
                self.aggregate_checked(plan, [*kept, res])
            except Exception as e:  # noqa: BLE001 -- whatever a result makes aggregation raise, drop the result
                dropped[res.client] = f"refused at close: {e}"
                if not isinstance(e, ValueError | OverflowError):
                    traceback.print_exc(file=sys.stderr)
                continue
            kept.append(res)
        return kept, dropped

    def close_admissible(self, plan: RoundPlan, results: list[ClientResult],
                         last: bool) -> tuple[list[ClientResult], dict[int, str], tuple | None]:
        """Close the round with every result it can aggregate: (results kept, why each other was dropped, what
        close_round returns, or None when no result is left)."""
        dropped: dict[int, str] = {}
        try:
            self.aggregate_checked(plan, results)
        except Exception:  # noqa: BLE001 -- find the results at fault
            results, dropped = self.admissible(plan, results)
        return results, dropped, self.close_round(plan, results, last) if results else None

    def close_round(self, plan: RoundPlan, results: list[ClientResult], last: bool) -> tuple[GlobalUpdate, str, dict]:
        """Aggregate (checked before anything changes), update coordinator-side strategy state, and (holding the
        model) apply and evaluate."""
        update = self.aggregate_checked(plan, results)
        self.strategy.observe(plan, results)
        self.delta_bound += self.growth(update)
        if self.fed is None:
            return update, "", {}
        self.strategy.apply(self.fed.state, update)
        due = plan.round % self.cfg.eval.every == 0 or last
        return update, self.fed.state.checksum(), self.evaluate() if due else {}
