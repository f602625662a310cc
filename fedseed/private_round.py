"""A run's private rounds, built alike by every party from the run's config: the quantized range, the noise, the
accountant, a client's vector, and the round's combined values from what the coordinator learns (a secure sum).

A client's round is the vector of its scalars on the round's shared seeds (zeros for steps it did not take),
clipped to ``privacy.clip`` and quantized; with distributed DP it adds Skellam noise of parameter
sigma^2 levels^2 / (2 min_clients) per element, so any min_clients clients' noise sums to the mechanism's. The
coordinator's sum, divided by the number of clients in it (after central noise, when central), is each
seed's value; the strategy turns it into the global update as for any other round.
"""

from __future__ import annotations

import math
import secrets

import numpy as np

from fedseed.accountant import Accountant, BudgetExhausted, noise_multiplier
from fedseed.config import Config
from fedseed.robust import Combined
from fedseed.secagg import field as fld
from fedseed.secagg.field import Quantizer
from fedseed.secagg.local import run_locally
from fedseed.secagg.protocol import SecAggParams, SecureSum
from fedseed.seeds import sample_clients
from fedseed.strategies.base import ClientResult, RoundPlan, Strategy
from fedseed.v1 import coordinator_pb2 as pb
from fedseed.wire import SIZED_CHECKSUM, update_request

__all__ = ["BudgetExhausted", "PrivateRun", "planned_participation", "secure_rng"]
MAX_MU = float(1 << 36)  # the largest Skellam parameter a client draws (Poisson(mu) twice)


def secure_rng() -> np.random.Generator:
    """Noise drawn from 128 bits of the operating system's randomness, never from the run's public seed."""
    return np.random.default_rng(secrets.randbits(128))


def planned_participation(cfg: Config) -> int:
    """The most rounds any client takes part in under the run's first-attempt draws (every client available)."""
    counts = np.zeros(cfg.federation.num_clients, np.int64)
    everyone = list(range(cfg.federation.num_clients))
    for r in range(1, cfg.run.rounds + 1):
        counts[sample_clients(cfg.run.seed, r, 0, everyone, cfg.federation.clients_per_round)] += 1
    return int(counts.max())


class PrivateRun:
    def __init__(self, cfg: Config, strategy: Strategy) -> None:
        self.cfg, self.sec, self.strategy = cfg, cfg.privacy, strategy
        self.length = strategy.steps_per_round()
        self.max_clients = cfg.federation.clients_per_round
        dp = self.sec.dp
        self.sigma = (noise_multiplier(self.sec, planned_participation(cfg), self._l1_over_mu)
                      if dp != "off" else 0.0)
        self.quantizer = self._quantizer(self.sigma)
        self.mu = self._mu(self.sigma, self.quantizer.levels) if dp == "distributed" else 0.0
        self.accountant = (Accountant(self.sec, self.sigma, cfg.federation.num_clients, self._l1_over_mu(self.sigma))
                           if dp != "off" else None)

    # ---- the run's constants -----------------------------------------------------------------------------
    def _quantizer(self, sigma: float) -> Quantizer:
        if self.sec.dp != "distributed":
            return Quantizer.for_round(self.sec.clip, self.max_clients)
        q = Quantizer.for_round(self.sec.clip, self.max_clients, sigma * math.sqrt(self.max_clients /
                                                                                    self.sec.min_clients))
        # numpy's Poisson sampler is accurate up to about 1e13 (tails checked to 4 sigma at 2^36 and 1e13) and
        # not beyond: coarsen the levels so that each client's mu stays within MAX_MU
        most = int(math.sqrt(2.0 * self.sec.min_clients * MAX_MU) / sigma) if sigma else q.levels
        return Quantizer(self.sec.clip, max(1, min(q.levels, most)))

    def _mu(self, sigma: float, levels: int) -> float:
        """Each client's Skellam parameter: min_clients of them sum to variance (sigma levels)^2 = 2 mu_total."""
        return (sigma * levels) ** 2 / (2.0 * self.sec.min_clients)

    def _l1_over_mu(self, sigma: float) -> float:
        """D1 / mu_total of the Skellam bound: L1 sensitivity sqrt(D) levels over the noise of min_clients."""
        if self.sec.dp != "distributed":
            return 0.0
        levels = self._quantizer(sigma).levels
        return math.sqrt(self.length) * levels / (self._mu(sigma, levels) * self.sec.min_clients)

    def describe(self) -> dict:
        """The run's privacy constants, as the log and inspect show them."""
        modes = (["secure aggregation"] if self.sec.secure_aggregation else []) + (
            [f"dp {self.sec.dp}"] if self.sec.dp != "off" else [])
        out = {"mode": " + ".join(modes), "levels": self.quantizer.levels, "clip": self.sec.clip}
        if self.accountant is not None:
            out |= {"noise_multiplier": round(self.sigma, 6), "rounds_per_client": self.accountant.max_rounds}
        if self.mu:
            out["skellam_mu"] = self.mu
        return out

    def params(self, run_id: str, plan: RoundPlan, attempt: int = 0) -> SecAggParams:
        return SecAggParams(run_id, self.cfg.run.seed, plan.round, attempt, self.length, self.sec.min_clients,
                            self.sec.neighbours)

    def round_message(self, attempt: int) -> pb.PrivateRound:
        return pb.PrivateRound(attempt=attempt, length=self.length, levels=self.quantizer.levels, noise_levels=self.mu)

    # ---- a client ----------------------------------------------------------------------------------------
    def client_vector(self, plan: RoundPlan, result: ClientResult, rng: np.random.Generator) -> np.ndarray:
        """The client's clipped, quantized (and, distributed, noised) scalars as field elements."""
        scalars = self.strategy.scalars(plan, result)
        x = np.zeros(self.length, np.float64)
        x[:len(scalars)] = scalars
        q = self.quantizer.quantize(x)
        if self.mu:
            q = q + rng.poisson(self.mu, self.length).astype(np.int64) - rng.poisson(self.mu, self.length)
        return fld.to_field(q)

    # ---- the coordinator -----------------------------------------------------------------------------------
    def check_budget(self, round_idx: int, clients: list[int]) -> None:
        if self.accountant is not None:
            self.accountant.check(round_idx, clients)

    def combined(self, plan: RoundPlan, ssum: SecureSum, rng: np.random.Generator) -> Combined:
        """Each shared seed's value: the sum's mean over its clients, central noise added first when central."""
        values = self.quantizer.dequantize(ssum.total)
        if self.sec.dp == "central":
            values = values + rng.normal(0.0, self.sigma * self.sec.clip, self.length)
        values = values / len(ssum.clients)
        keys = self.strategy.private_keys(plan, self.length)
        unique, where = np.unique(keys, return_inverse=True)
        per_key = np.zeros(unique.size, np.float64)
        np.add.at(per_key, where, values)
        return Combined(unique, per_key, bound=self.sec.clip)

    def plain_sum(self, vectors: dict[int, np.ndarray]) -> SecureSum:
        """Without secure aggregation the coordinator sums the clients' vectors itself (it sees each)."""
        total = np.zeros(self.length, np.uint64)
        for v in vectors.values():
            total = fld.add(total, v)
        return SecureSum(sorted(vectors), fld.from_field(total))

    # ---- every party in one process (the simulation) ------------------------------------------------------
    def simulated_sum(self, run_id: str, plan: RoundPlan, results: list[ClientResult]
                      ) -> tuple[SecureSum, tuple[int, int]]:
        """The round's sum as the coordinator would learn it from these clients, and the bytes it took (the
        protocol's messages, and each client's UpdateRequest carrying its masked or plain vector)."""
        rng = secure_rng()
        vectors = {r.client: self.client_vector(plan, r, rng) for r in results}
        if len(vectors) < self.sec.min_clients:
            return SecureSum([], np.zeros(0, np.int64), ""), (0, 0)
        if self.sec.secure_aggregation:
            local = run_locally(self.params(run_id, plan), vectors)
            ssum, payloads, up, down = local.sum, local.payloads, local.bytes_up, local.bytes_down
        else:
            ssum, payloads, up, down = self.plain_sum(vectors), {c: fld.pack(v) for c, v in vectors.items()}, 0, 0
        up += sum(update_request(masked_result(plan.round, c, p), SIZED_CHECKSUM).ByteSize()
                  for c, p in payloads.items())
        return ssum, (up, down)


def masked_result(round_idx: int, client: int, payload: bytes) -> ClientResult:
    """A private round's UpdateRequest content: the vector, and nothing else of the client's (no sample count,
    loss or skipped steps)."""
    return ClientResult(round_idx, client, payload, 1, float("nan"), 0)
