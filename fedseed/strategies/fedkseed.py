"""FedKSeed: zeroth-order local steps along seeds drawn from a fixed pool of K; the server sums the clients'
data-weighted scalars per seed, and the global update is -lr * sum_j A_j z_j over the pool.

Differences from the paper's code: step seeds are derived from (run, round, client, step), so only the τ
scalars travel up; the learning rate (and its schedule) is folded into the coefficients, so a schedule does
not break the closed form; and coefficients are applied in exact fixed point, so catching up from the
accumulated K-vector is bit-identical to following every round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedseed.codecs import decode
from fedseed.robust import Combined, Contribution
from fedseed.seeds import seed_pool, uniform_index
from fedseed.strategies.base import (
    ClientResult,
    GlobalUpdate,
    LocalContext,
    RoundPlan,
    RunSetup,
    Strategy,
    StrategyConfig,
    as_fp32,
    zo_local_steps,
)

SHARED = 0xFFFF_FFFF  # the client slot of step seeds that every client of a round shares


@dataclass
class FedKSeedConfig(StrategyConfig):
    num_seeds: int = 4096
    grad_clip: float = 0.0  # skip a step whose |g| exceeds this (0 = off), as the reference code does
    shared_seeds: bool = False  # every client of a round takes step t along the same seed (as DeComFL does)

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.num_seeds <= 65536:
            raise ValueError(f"strategy.num_seeds must be in [1, 65536], got {self.num_seeds}")


class FedKSeed(Strategy):
    name = "fedkseed"
    steps_along_spsa_scalars = True
    config_class = FedKSeedConfig
    cfg: FedKSeedConfig

    def setup(self, run: RunSetup) -> FedKSeed:
        super().setup(run)
        self._pool = seed_pool(run.seed, self.cfg.num_seeds)
        return self

    @property
    def pool(self) -> np.ndarray:
        """The K seeds of the run (raises until the strategy is set up for one)."""
        _ = self.run  # the run's setup, or a clear error before it
        return self._pool

    def seed_pool(self) -> np.ndarray:
        return self.pool

    @classmethod
    def shares_seeds(cls, cfg: StrategyConfig) -> bool:
        return bool(getattr(cfg, "shared_seeds", False))

    def step_index(self, plan: RoundPlan, client: int, step: int) -> int:
        slot = SHARED if self.cfg.shared_seeds else client
        return uniform_index(self.cfg.num_seeds, self.run_seed, plan.round, slot, step)

    def private_keys(self, plan: RoundPlan, length: int) -> np.ndarray:
        """The pool indices of a private round's steps 0..length-1, which every client of the round shares."""
        if not self.cfg.shared_seeds:
            raise ValueError("a private round needs strategy.shared_seeds = true")
        return np.asarray([self.step_index(plan, 0, t) for t in range(length)], np.int64)  # any client: shared

    def local_work(self, ctx: LocalContext, plan: RoundPlan, client: int) -> ClientResult:
        return zo_local_steps(ctx, plan, client, self.cfg, lambda t: int(self.pool[self.step_index(plan, client, t)]),
                              self.cfg.grad_clip)

    def scalars(self, plan: RoundPlan, result: ClientResult) -> np.ndarray:
        """The client's decoded step scalars; ValueError on a ragged, non-finite or wrong-length payload."""
        g = decode(result.payload, self.cfg.codec)
        expected = plan.local_steps(result.client, self.cfg.local_steps)
        if len(g) != expected:
            raise ValueError(f"client {result.client} sent {len(g)} scalars, expected {expected}")
        return g

    def contributions(self, plan: RoundPlan, results: list[ClientResult]) -> list[Contribution]:
        """Each client's scalars on the pool indices of its steps."""
        out = []
        for res in results:
            g = self.scalars(plan, res)
            keys = np.asarray([self.step_index(plan, res.client, t) for t in range(len(g))], np.int64)
            out.append(Contribution(res.client, keys, g.astype(np.float64), res.num_samples))
        return out

    def update_from(self, plan: RoundPlan, combined: Combined) -> GlobalUpdate:
        """-lr * A_j z_j over the pool indices j with a non-zero per-seed value A_j."""
        nz = np.flatnonzero(combined.values)
        idx = combined.keys[nz]
        return GlobalUpdate(plan.round, self.cfg.direction, self.pool[idx].copy(),
                            as_fp32(-plan.lr * combined.values[nz]), pool_indices=idx.astype(np.int64))
