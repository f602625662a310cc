"""FZOO (Dang et al., "FZOO: Fast Zeroth-Order Optimizer for Fine-Tuning Large Language Models towards Adam-Scale
Speed", arXiv 2506.09034): each step takes N one-sided Rademacher probes from one unperturbed forward and
normalises them by the spread of the probe losses,

    a_i = (L(w + eps u_i) - L(w)) / (N sigma),   sigma = population std of L(w + eps u_1 .. u_N),
    w <- w - lr sum_i a_i u_i,

a normalised-SGD step of N + 1 forwards. Here it is FedKSeed with N probes a step: probe i of step t is pool index
uniform_index(K, run, round, slot, t N + i), the a_i travel as the step scalars, and every party rebuilds the
update exactly as FedKSeed's (-lr A_j z_j over the pool), so the state, log and wire are FedKSeed's unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from fedseed.codecs import decode, encode
from fedseed.strategies.base import ClientResult, LocalContext, RoundPlan
from fedseed.strategies.fedkseed import FedKSeed, FedKSeedConfig


@dataclass
class FZOOConfig(FedKSeedConfig):
    perturbations: int = 8  # N one-sided probes a step (the paper's default)

    def validate(self) -> None:
        super().validate()
        if self.direction != "rademacher":
            raise ValueError("strategy fzoo perturbs along Rademacher directions: strategy.direction must be "
                             "'rademacher'")
        if self.perturbations < 3:  # with two, sigma only measures the gap between the two probe losses
            raise ValueError(f"strategy.perturbations must be >= 3, got {self.perturbations}")


class FZOO(FedKSeed):
    name = "fzoo"
    steps_along_spsa_scalars = False  # its steps are normalised by the spread of its probes' losses
    config_class = FZOOConfig
    cfg: FZOOConfig

    def max_payload_bytes(self) -> int:
        return super().max_payload_bytes() * self.cfg.perturbations  # N scalars a local step

    def passes(self, steps: int) -> tuple[int, int]:
        return (self.cfg.perturbations + 1) * steps, 0  # the unperturbed loss and N one-sided probes a step

    def scalars(self, plan: RoundPlan, result: ClientResult) -> np.ndarray:
        g = decode(result.payload, self.cfg.codec)
        expected = plan.local_steps(result.client, self.cfg.local_steps) * self.cfg.perturbations
        if len(g) != expected:
            raise ValueError(f"client {result.client} sent {len(g)} scalars, expected {expected}")
        return g

    def local_work(self, ctx: LocalContext, plan: RoundPlan, client: int) -> ClientResult:
        n, eps, kind = self.cfg.perturbations, self.cfg.eps, self.cfg.direction
        state, scalars, losses, skipped = ctx.state, [], [], 0
        for t in range(plan.local_steps(client, self.cfg.local_steps)):
            batch = ctx.next_batch()
            seeds = [int(self.pool[self.step_index(plan, client, t * n + i)]) for i in range(n)]
            with torch.inference_mode():
                base = float(ctx.objective.loss(state.model, batch))
                probes = []
                for seed in seeds:
                    state.perturb(seed, eps, kind)
                    probes.append(float(ctx.objective.loss(state.model, batch)))
                    state.perturb(seed, -eps, kind)
            sigma = float(np.std(probes))
            a = [(p - base) / (n * sigma) for p in probes] if sigma > 0 else []
            if not (a and math.isfinite(base) and all(math.isfinite(v) for v in a)):
                skipped += 1
                scalars += [0.0] * n
                continue
            if self.cfg.grad_clip and max(abs(v) for v in a) > self.cfg.grad_clip:
                skipped += 1
                scalars += [0.0] * n
                continue
            for seed, v in zip(seeds, a):
                state.step(seed, -plan.lr * v, kind)
            scalars += a
            losses.append(base)
        return ClientResult(plan.round, client, encode(np.asarray(scalars), self.cfg.codec), ctx.num_samples,
                            float(np.mean(losses)) if losses else float("nan"), skipped)
