"""FedAvg with first-order local SGD and dense weight deltas: the baseline for accuracy and bytes only.

Of the run's bounds (``fedseed.robust``) a dense delta takes the client weighting and the norm bound; the
scalar clip and the coordinate-wise rules are for seed-space scalars."""

from __future__ import annotations

import numpy as np
import torch

from fedseed.robust import client_weights
from fedseed.strategies.base import ClientResult, GlobalUpdate, LocalContext, RoundPlan, Strategy


def local_sgd(ctx: LocalContext, lr: float, steps: int) -> tuple[float, int]:
    """`steps` plain SGD steps on the client's batches (weights change in the flat buffer)."""
    params = [p for p in ctx.state.model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr)
    losses = []
    skipped = 0
    for _ in range(steps):
        batch = ctx.next_batch()
        opt.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = ctx.objective.loss(ctx.state.model, batch)
            if not torch.isfinite(loss):
                skipped += 1
                continue
            loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    opt.zero_grad(set_to_none=True)
    return (float(np.mean(losses)) if losses else float("nan")), skipped


class FedAvg(Strategy):
    name = "fedavg"
    first_order = True
    networked = False

    def local_work(self, ctx: LocalContext, plan: RoundPlan, client: int) -> ClientResult:
        loss, skipped = local_sgd(ctx, plan.lr, plan.local_steps(client, self.cfg.local_steps))
        start = ctx.state.global_weights()
        diff = (ctx.state.w - start).to("cpu").numpy().astype("<f4")
        return ClientResult(plan.round, client, diff.tobytes(), ctx.num_samples, loss, skipped)

    def max_payload_bytes(self) -> int:
        return 4 * self.run.layout.size  # one float32 delta per trainable element

    def aggregate(self, plan: RoundPlan, results: list[ClientResult]) -> GlobalUpdate:
        robust = self.run.robust
        deltas = []
        for res in results:
            d = np.frombuffer(res.payload, dtype="<f4")
            if deltas and d.size != deltas[0].size:
                raise ValueError(f"client {res.client} sent {d.size} weights, expected {deltas[0].size}")
            if not np.isfinite(d).all():
                raise ValueError(f"client {res.client} sent non-finite weights")
            deltas.append(d)
        scales = np.ones(len(deltas))
        if robust.norm_factor and len(deltas) > 1:
            norms = np.asarray([float(np.linalg.norm(d.astype(np.float64))) for d in deltas])
            limit = robust.norm_factor * float(np.median(norms))
            scales = np.where(norms > limit, limit / np.maximum(norms, 1e-300), 1.0)
        weights = client_weights([r.num_samples for r in results], robust) * scales
        total = np.zeros(deltas[0].size, np.float64)
        for wgt, d in zip(weights, deltas):
            total += wgt * d.astype(np.float64)
        return GlobalUpdate(plan.round, self.cfg.direction, dense=total.astype(np.float32))
