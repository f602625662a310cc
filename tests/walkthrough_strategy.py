"""The strategy docs/strategies.md walks through, in one file: federated zeroth-order SGD with a fresh seed per
step (no seed pool). A client takes `local_steps` SPSA steps along directions named by (run, round, client,
step) and sends one scalar per step; every party applies each step's direction with the scalar, the round's lr
and the client's data weight. Registered from outside fedseed, through the `fedseed.strategies` entry point."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedseed import Strategy, StrategyConfig
from fedseed.codecs import decode
from fedseed.robust import Combined, Contribution
from fedseed.seeds import derive_seed
from fedseed.strategies import base

SEED_TAG = 0xF2E5  # keeps these seeds apart from every other use of derive_seed


@dataclass
class FreshSeedConfig(StrategyConfig):
    name: str = "fresh-seed-zo"
    clip: float = 0.0  # scalars are clipped to [-clip, clip] when aggregated (0: off)

    def validate(self) -> None:
        super().validate()
        if not self.clip >= 0:
            raise ValueError(f"strategy.clip must be >= 0, got {self.clip}")


class FreshSeedZO(Strategy):
    name = "fresh-seed-zo"
    config_class = FreshSeedConfig
    cfg: FreshSeedConfig

    def step_seed(self, round_idx: int, client: int, step: int) -> int:
        return derive_seed(self.run_seed, SEED_TAG, round_idx, client, step)

    def local_work(self, ctx: base.LocalContext, plan: base.RoundPlan, client: int) -> base.ClientResult:
        return base.zo_local_steps(ctx, plan, client, self.cfg, lambda t: self.step_seed(plan.round, client, t))

    def contributions(self, plan: base.RoundPlan, results: list[base.ClientResult]) -> list[Contribution]:
        out = []
        for res in results:
            g = decode(res.payload, self.cfg.codec)
            if len(g) != plan.local_steps(res.client, self.cfg.local_steps):
                raise ValueError(f"client {res.client} sent {len(g)} scalars, expected {self.cfg.local_steps}")
            if self.cfg.clip:
                g = np.clip(g, -self.cfg.clip, self.cfg.clip)
            seeds = [self.step_seed(plan.round, res.client, t) for t in range(len(g))]
            out.append(Contribution(res.client, np.asarray(seeds, np.int64), g.astype(np.float64), res.num_samples))
        return out

    def update_from(self, plan: base.RoundPlan, combined: Combined) -> base.GlobalUpdate:
        return base.GlobalUpdate(plan.round, self.cfg.direction, combined.keys.astype(np.int64),
                                 base.as_fp32(-plan.lr * combined.values))
