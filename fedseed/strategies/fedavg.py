"""FedAvg with first-order local SGD and dense weight deltas: the baseline for accuracy and bytes only."""

from __future__ import annotations

import numpy as np
import torch

from fedseed.strategies.base import ClientResult, GlobalUpdate, LocalContext, RoundPlan, Strategy, client_weights


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
    networked = False

    def local_work(self, ctx: LocalContext, plan: RoundPlan, client: int) -> ClientResult:
        loss, skipped = local_sgd(ctx, plan.lr, plan.local_steps(client, self.cfg.local_steps))
        start = ctx.state.global_weights()
        diff = (ctx.state.w - start).to("cpu").numpy().astype("<f4")
        return ClientResult(plan.round, client, diff.tobytes(), ctx.num_samples, loss, skipped)

    def max_payload_bytes(self) -> int:
        return 4 * self.run.layout.size  # one float32 delta per trainable element

    def aggregate(self, plan: RoundPlan, results: list[ClientResult]) -> GlobalUpdate:
        weights = client_weights(results, self.cfg.equal_weight)
        total = None
        for wgt, res in zip(weights, results):
            d = np.frombuffer(res.payload, dtype="<f4").astype(np.float64)
            if total is not None and d.size != total.size:
                raise ValueError(f"client {res.client} sent {d.size} weights, expected {total.size}")
            if not np.isfinite(d).all():
                raise ValueError(f"client {res.client} sent non-finite weights")
            total = wgt * d if total is None else total + wgt * d
        return GlobalUpdate(plan.round, self.cfg.direction, dense=total.astype(np.float32))
