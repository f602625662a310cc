"""Ferret: first-order local steps, then the local update projected block-wise onto seed-named random bases.

Per block l with K_l bases v_k (named by seeds derived from run, round, client, block, k), the client sends
gamma_k = (rho K_l)^-1 <v_k, Delta_l> where Delta = w_start - w_end and rho = E[v^2] of the direction kind,
so sum_k gamma_k v_k is an unbiased reconstruction of Delta_l (Ferret, eq. 6-8). The global update is
-server_lr * (weighted mean over clients of the reconstructions). Blocks pack consecutive tensors until they
reach 0.9 x the median tensor size, as Ferret's code does; with adaptive_k, K_l is proportional to ||Delta_l||
and the K_l travel with the coefficients (2 bytes each).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

from fedseed import rng_spec
from fedseed.codecs import BYTES_PER_SCALAR, decode, encode
from fedseed.layout import Layout
from fedseed.robust import Combined, Contribution
from fedseed.seeds import derive_seed
from fedseed.strategies.base import (
    ClientResult,
    GlobalUpdate,
    LocalContext,
    RoundPlan,
    RunSetup,
    Strategy,
    StrategyConfig,
    as_fp32,
)
from fedseed.strategies.fedavg import local_sgd


@dataclass
class FerretConfig(StrategyConfig):
    num_bases: int = 1024  # K, the total over blocks
    server_lr: float = 1.0
    adaptive_k: bool = False

    def validate(self) -> None:
        super().validate()
        if self.num_bases < 1:
            raise ValueError(f"strategy.num_bases must be >= 1, got {self.num_bases}")


def blocks_of(layout: Layout) -> list[tuple[int, int]]:
    """[start, stop) ranges of the flat buffer, each a run of consecutive tensors."""
    sizes = sorted(s.padded for s in layout.slots)
    target = 0.9 * sizes[len(sizes) // 2]
    blocks, start = [], None
    for s in layout.slots:
        start = s.offset if start is None else start
        if s.offset + s.padded - start >= target:
            blocks.append((start, s.offset + s.padded))
            start = None
    if start is not None:
        blocks.append((start, layout.size))
    return blocks


class Ferret(Strategy):
    name = "ferret"
    first_order = True
    config_class = FerretConfig
    cfg: FerretConfig

    def setup(self, run: RunSetup) -> Ferret:
        super().setup(run)
        self.blocks = blocks_of(run.layout)
        self.rho = rng_spec.second_moment(self.cfg.direction)
        return self

    def uniform_k(self) -> list[int]:
        return [max(1, self.cfg.num_bases // len(self.blocks))] * len(self.blocks)

    def basis_seed(self, round_idx: int, client: int, block: int, k: int) -> int:
        return derive_seed(self.run_seed, 0xFE77E7, round_idx, client, block, k)

    def local_work(self, ctx: LocalContext, plan: RoundPlan, client: int) -> ClientResult:
        loss, skipped = local_sgd(ctx, plan.lr, plan.local_steps(client, self.cfg.local_steps))
        st = ctx.state
        if self.cfg.adaptive_k:
            norms = []
            for lo, hi in self.blocks:
                start = st.global_weights(lo, hi)
                norms.append(float(torch.linalg.vector_norm((start - st.w[lo:hi]).double())))
            total = sum(norms) or 1.0
            ks = [max(1, int(self.cfg.num_bases * n / total)) for n in norms]
        else:
            ks = self.uniform_k()
        gammas = []
        for b, ((lo, hi), k_l) in enumerate(zip(self.blocks, ks)):
            for k in range(k_l):
                dot = st.engine.project(st.w[lo:hi], st.w0[lo:hi], st.delta[lo:hi], lo,
                                        self.basis_seed(plan.round, client, b, k), self.cfg.direction)
                gammas.append(dot / (self.rho * k_l))
        payload = encode(np.asarray(gammas), self.cfg.codec)
        if self.cfg.adaptive_k:
            payload = struct.pack(f"<{len(ks)}H", *ks) + payload
        return ClientResult(plan.round, client, payload, ctx.num_samples, loss, skipped)

    def max_payload_bytes(self) -> int:
        width = BYTES_PER_SCALAR[self.cfg.codec]
        if not self.cfg.adaptive_k:
            return sum(self.uniform_k()) * width
        n = len(self.blocks)  # each adaptive K_l is floor(K * share_l) raised to at least 1: at most K + n in all
        return 2 * n + (self.cfg.num_bases + n) * width

    def split_payload(self, payload: bytes) -> tuple[list[int], np.ndarray]:
        n_blocks = len(self.blocks)
        if self.cfg.adaptive_k:
            if len(payload) < 2 * n_blocks:
                raise ValueError("ferret payload shorter than its block counts")
            ks = list(struct.unpack(f"<{n_blocks}H", payload[:2 * n_blocks]))
            payload = payload[2 * n_blocks:]
        else:
            ks = self.uniform_k()
        gammas = decode(payload, self.cfg.codec)
        if len(gammas) != sum(ks) or min(ks) < 1:
            raise ValueError(f"ferret payload has {len(gammas)} coefficients, expected {sum(ks)}")
        return ks, gammas

    def contributions(self, plan: RoundPlan, results: list[ClientResult]) -> list[Contribution]:
        """Each client's coefficients on the seeds of its bases, tagged with their block."""
        out = []
        for res in results:
            ks, gammas = self.split_payload(res.payload)
            seeds, blocks = [], []
            for b, k_l in enumerate(ks):
                seeds += [self.basis_seed(plan.round, res.client, b, k) for k in range(k_l)]
                blocks += [b] * k_l
            out.append(Contribution(res.client, np.asarray(seeds, np.int64), gammas.astype(np.float64),
                                    res.num_samples, np.asarray(blocks, np.int64)))
        return out

    def update_from(self, plan: RoundPlan, combined: Combined) -> GlobalUpdate:
        """-server_lr * (the weighted mean of the clients' reconstructions), each basis on its block."""
        bounds = np.asarray(self.blocks, np.int64).reshape(-1, 2)
        tags = combined.tags if combined.tags is not None else np.zeros(0, np.int64)
        return GlobalUpdate(plan.round, self.cfg.direction, combined.keys.astype(np.int64),
                            as_fp32(-self.cfg.server_lr * combined.values), bounds[tags, 0].copy(),
                            bounds[tags, 1].copy())
