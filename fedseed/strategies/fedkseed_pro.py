"""FedKSeed-Pro: FedKSeed with seeds drawn by importance instead of uniformly.

Importance of seed j is the mean |clip(g, -c, c)| over every scalar observed for it, with one initial 0 as
shrinkage prior (the paper's grad_initial); importances are min-max normalised to [0, 1] and passed through a
softmax with a temperature (1 reproduces the paper's rule; lower sharpens it). Probabilities travel as integer
weights so every party draws the same indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedseed.robust import Combined, clipped
from fedseed.seeds import weighted_index
from fedseed.strategies.base import ClientResult, RoundPlan, RunSetup
from fedseed.strategies.fedkseed import SHARED, FedKSeed, FedKSeedConfig

WEIGHT_SCALE = 1 << 24


@dataclass
class FedKSeedProConfig(FedKSeedConfig):
    temperature: float = 1.0
    importance_clip: float = 1000.0

    def validate(self) -> None:
        super().validate()
        if not self.temperature > 0:
            raise ValueError(f"strategy.temperature must be > 0, got {self.temperature}")


class FedKSeedPro(FedKSeed):
    name = "fedkseed-pro"
    config_class = FedKSeedProConfig
    cfg: FedKSeedProConfig
    relayable = False  # a client outside the round lacks its sampling weights, so coefficients travel

    def setup(self, run: RunSetup) -> FedKSeedPro:
        super().setup(run)
        self.abs_sum = np.zeros(self.cfg.num_seeds, dtype=np.float64)
        self.count = np.ones(self.cfg.num_seeds, dtype=np.float64)  # the initial 0 observation
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"abs_sum": self.abs_sum.copy(), "count": self.count.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        k = self.cfg.num_seeds
        if set(state) != {"abs_sum", "count"} or any(np.shape(v) != (k,) for v in state.values()):
            raise ValueError(f"fedkseed-pro state must hold abs_sum and count of {k} values each")
        self.abs_sum = np.asarray(state["abs_sum"], np.float64).copy()
        self.count = np.asarray(state["count"], np.float64).copy()

    def probabilities(self) -> np.ndarray:
        a = self.abs_sum / self.count
        a = (a - a.min()) / (a.max() - a.min() + 1e-10)
        e = np.exp((a - a.max()) / self.cfg.temperature)
        return e / e.sum()

    def integer_weights(self) -> np.ndarray:
        return np.maximum(1, np.rint(self.probabilities() * WEIGHT_SCALE)).astype(np.int64)

    def configure_round(self, round_idx: int, clients: list[int]) -> RoundPlan:
        plan = super().configure_round(round_idx, clients)
        weights = self.integer_weights()
        plan.broadcast["cum_weights"] = np.cumsum(weights)
        return plan

    def encode_broadcast(self, plan: RoundPlan) -> bytes:
        return np.diff(plan.broadcast["cum_weights"], prepend=0).astype("<u4").tobytes()

    def decode_broadcast(self, data: bytes) -> dict:
        if len(data) != 4 * self.cfg.num_seeds:
            raise ValueError(f"sampling weights must be {4 * self.cfg.num_seeds} bytes, got {len(data)}")
        weights = np.frombuffer(data, "<u4").astype(np.int64)
        if weights.min() < 1:
            raise ValueError("sampling weights must be positive")
        return {"cum_weights": np.cumsum(weights)}

    def step_index(self, plan: RoundPlan, client: int, step: int) -> int:
        slot = SHARED if self.cfg.shared_seeds else client
        return weighted_index(plan.broadcast["cum_weights"], self.run_seed, plan.round, slot, step)

    def observe(self, plan: RoundPlan, results: list[ClientResult]) -> None:
        """Importance statistics from the scalars as the round bounded them (a client cannot inflate its seeds)."""
        c = self.cfg.importance_clip
        contribs, _ = clipped(self.contributions(plan, results), self.run.robust)
        for contrib in contribs:
            for j, gt in zip(contrib.keys.tolist(), contrib.values.tolist()):
                self.abs_sum[j] += min(abs(gt), c)
                self.count[j] += 1

    def observe_combined(self, plan: RoundPlan, combined: Combined) -> None:
        """A private round's importance statistics: each shared seed's released mean, one observation per seed (the
        clients' own scalars stay unknown)."""
        c = self.cfg.importance_clip
        for j, v in zip(combined.keys.tolist(), combined.values.tolist()):
            self.abs_sum[j] += min(abs(v), c)
            self.count[j] += 1
