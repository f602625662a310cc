"""Centralized MeZO (Malladi et al. 2023): one party holding all the training data takes zeroth-order SGD steps,
each along a fresh seed. The baseline every federated zeroth-order method is measured against.

A round is `local_steps` sequential steps; the round's update is the list of (step seed, -lr * g) pairs, so the
logged run replays exactly like the federated ones. Seeds come from (run, round, step), not from a pool.
"""

from __future__ import annotations

import numpy as np

from fedseed.codecs import decode
from fedseed.seeds import derive_seed
from fedseed.strategies.base import (
    ClientResult,
    GlobalUpdate,
    LocalContext,
    RoundPlan,
    RunSetup,
    Strategy,
    as_fp32,
    zo_local_steps,
)


class MeZO(Strategy):
    name = "mezo"
    steps_along_spsa_scalars = True
    networked = False  # one party: nothing to federate
    centralized = True

    def setup(self, run: RunSetup) -> MeZO:
        if run.num_clients != 1:
            raise ValueError(f"strategy mezo is centralized: federation.num_clients must be 1, got {run.num_clients}")
        super().setup(run)
        return self

    def step_seed(self, round_idx: int, step: int) -> int:
        return derive_seed(self.run_seed, 0x3E20, round_idx, step)

    def local_work(self, ctx: LocalContext, plan: RoundPlan, client: int) -> ClientResult:
        return zo_local_steps(ctx, plan, client, self.cfg, lambda t: self.step_seed(plan.round, t))

    def aggregate(self, plan: RoundPlan, results: list[ClientResult]) -> GlobalUpdate:
        if len(results) != 1:
            raise ValueError(f"mezo aggregates exactly one party's steps, got {len(results)} results")
        res = results[0]
        g = decode(res.payload, self.cfg.codec)
        expected = plan.local_steps(res.client, self.cfg.local_steps)
        if len(g) != expected:
            raise ValueError(f"mezo party sent {len(g)} scalars, expected {expected}")
        seeds = np.asarray([self.step_seed(plan.round, t) for t in range(len(g))], np.int64)
        return GlobalUpdate(plan.round, self.cfg.direction, seeds, as_fp32(-plan.lr * g))
