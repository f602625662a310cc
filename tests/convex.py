"""A small convex federated problem (noise-free linear regression) that every strategy must solve."""

from __future__ import annotations

import numpy as np
import torch

from fedseed.directions import DirectionEngine
from fedseed.layout import build_layout, model_checksum
from fedseed.simulations.backends.base import local_results
from fedseed.state import FlatState
from fedseed.strategies import build_strategy
from fedseed.strategies.base import LocalContext, RunSetup, StrategyConfig

DIM = 64


class LeastSquares:
    """loss(model, (X, y)) = mean (X w - y)^2: the objective interface strategies call."""

    def loss(self, model: torch.nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return ((model(x).squeeze(-1) - y) ** 2).mean()


class Problem:
    def __init__(self, num_clients: int = 4, per_client: int = 64, seed: int = 0, backend: str = "eager") -> None:
        g = torch.Generator().manual_seed(seed)
        self.w_star = torch.randn(DIM, generator=g)
        self.data = []
        for _ in range(num_clients):
            x = torch.randn(per_client, DIM, generator=g)
            self.data.append((x, x @ self.w_star))
        self.model = torch.nn.Linear(DIM, 1, bias=False)
        with torch.no_grad():
            self.model.weight.zero_()
        self.layout = build_layout(self.model, None, model_checksum(self.model))
        self.state = FlatState(self.model, self.layout, DirectionEngine(backend))
        self.objective = LeastSquares()
        self.strategy = None

    def context(self, round_idx: int, client: int) -> LocalContext:
        batch = self.data[client]
        return LocalContext(self.state, self.objective, lambda: batch, len(batch[1]))

    def round(self, strategy, r: int, clients: list[int]):
        """One sequential round, as the inline backend runs it: (metrics, update, results)."""
        self.strategy = strategy
        plan = strategy.configure_round(r, clients)
        results = local_results(self, plan, plan.clients)
        update = strategy.aggregate(plan, results)
        strategy.observe(plan, results)
        strategy.apply(self.state, update)
        row = {"round": r, "clients": len(results), "payload_bytes": sum(len(x.payload) for x in results)}
        return row, update, results

    def error(self) -> float:
        return float(torch.linalg.vector_norm(self.model.weight.detach()[0] - self.w_star) /
                     torch.linalg.vector_norm(self.w_star))

    def run(self, cfg: StrategyConfig, rounds: int, clients: list[int] | None = None, seed: int = 7):
        strategy = build_strategy(cfg).setup(RunSetup(seed, rounds, len(self.data), self.layout))
        out = []
        for r in range(1, rounds + 1):
            out.append(self.round(strategy, r, clients or list(range(len(self.data)))))
        return strategy, out


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
