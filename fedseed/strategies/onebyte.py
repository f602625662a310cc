"""One-byte SPSA (Just One Byte, decentralized): every step, each active participant computes one SPSA scalar
per sample at the shared weights, seeded by (run, step, participant, sample), and sends it as one byte
(``fedseed.codecs`` onebyte code). Every party applies theta -= (lr / N) sum_i g_i z_i, N = scalars in the step;
the fixed-point state makes the sum independent of order. Participants join and leave between steps.
(The paper's code scales by lr / sqrt(N) and never sent the quantised value; here the byte is what is used.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fedseed.codecs import decode, encode
from fedseed.robust import Combined, Contribution
from fedseed.seeds import derive_seed
from fedseed.strategies.base import (
    ClientResult,
    GlobalUpdate,
    LocalContext,
    RoundPlan,
    Strategy,
    StrategyConfig,
    as_fp32,
)
from fedseed.zo import spsa_scalar


@dataclass
class OneByteConfig(StrategyConfig):
    codec: str = "onebyte"
    samples_per_step: int = 1
    # [participant, step] pairs: a participant is active from its join step, and before its leave step
    join: list[list[int]] = field(default_factory=list)
    leave: list[list[int]] = field(default_factory=list)

    def validate(self) -> None:
        super().validate()
        if self.samples_per_step < 1:
            raise ValueError(f"strategy.samples_per_step must be >= 1, got {self.samples_per_step}")
        for key in ("join", "leave"):
            for pair in getattr(self, key):
                if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) for v in pair)):
                    raise ValueError(f"strategy.{key} entries must be [participant, step] integer pairs")


class OneByte(Strategy):
    name = "onebyte"
    steps_along_spsa_scalars = True
    config_class = OneByteConfig
    cfg: OneByteConfig
    samples_clients = False
    varies_steps = False  # one scalar per sample per step, by the method's definition
    weights_clients = False  # theta -= (lr / N) sum g z: every scalar counts the same

    def is_active(self, participant: int, step: int) -> bool:
        joins = {p: s for p, s in self.cfg.join}
        leaves = {p: s for p, s in self.cfg.leave}
        return joins.get(participant, 1) <= step < leaves.get(participant, 1 << 62)

    def configure_round(self, round_idx: int, clients: list[int]) -> RoundPlan:
        plan = super().configure_round(round_idx, [c for c in clients if self.is_active(c, round_idx)])
        if not plan.clients:
            raise ValueError(f"no participant is active at step {round_idx}")
        return plan

    def steps_per_round(self) -> int:
        return self.cfg.samples_per_step

    def sample_seed(self, step: int, participant: int, sample: int) -> int:
        return derive_seed(self.run_seed, 0x1B, step, participant, sample)

    def local_work(self, ctx: LocalContext, plan: RoundPlan, client: int) -> ClientResult:
        scalars, losses, skipped = [], [], 0
        for n in range(self.cfg.samples_per_step):
            batch = ctx.next_batch()
            res = spsa_scalar(ctx.state, self.sample_seed(plan.round, client, n), self.cfg.eps,
                              self.cfg.direction, lambda b=batch: ctx.objective.loss(ctx.state.model, b))
            scalars.append(res.g)
            skipped += res.skipped
            if not res.skipped:
                losses.append(res.loss)
        ctx.state.restore()  # the shared weights must be exact before the step is applied
        return ClientResult(plan.round, client, encode(np.asarray(scalars), self.cfg.codec), ctx.num_samples,
                            float(np.mean(losses)) if losses else float("nan"), skipped)

    def contributions(self, plan: RoundPlan, results: list[ClientResult]) -> list[Contribution]:
        out = []
        for res in results:
            g = decode(res.payload, self.cfg.codec)
            if len(g) != self.cfg.samples_per_step:
                raise ValueError(f"participant {res.client} sent {len(g)} scalars, "
                                 f"expected {self.cfg.samples_per_step}")
            seeds = [self.sample_seed(plan.round, res.client, n) for n in range(len(g))]
            out.append(Contribution(res.client, np.asarray(seeds, np.int64), g.astype(np.float64), res.num_samples))
        return out

    def update_from(self, plan: RoundPlan, combined: Combined) -> GlobalUpdate:
        """-(lr / N) g per scalar: the equal-weight mean over participants, divided by the samples per step."""
        coefs = -plan.lr / self.cfg.samples_per_step * combined.values
        return GlobalUpdate(plan.round, self.cfg.direction, combined.keys.astype(np.int64), as_fp32(coefs))
