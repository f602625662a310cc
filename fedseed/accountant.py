"""Privacy accounting of a run, with Google's ``dp-accounting`` (RDP). The unit of privacy is a client (zero-out
adjacency: one client's whole contribution replaced by nothing), so a round's sum has L2 sensitivity
``privacy.clip``. Which clients take part in a round is a public function of the run's seed, not of anyone's data,
so a round in which a client takes no part costs it nothing, and no amplification by sampling is claimed: a
client's epsilon is that of its own rounds composed. The run's epsilon is the largest client's.

central:      the coordinator adds N(0, (sigma clip)^2) to each element of the sum -> Gaussian mechanism.
distributed:  each client adds Skellam noise; the sum of at least min_clients clients' noise is Skellam of
              variance (sigma clip)^2, which is (xi, rho)-zCDP with rho = 1/(2 sigma^2) and
              xi = 3 D1 / (4 mu) (Agarwal, Kairouz, Liu, NeurIPS 2021, Theorem 3.5 with its second bound).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import dp_accounting
import numpy as np
from dp_accounting.rdp import RdpAccountant

from fedseed.privacy import PrivacySection

MAX_PARTICIPATIONS = 1 << 20


def round_event(mode: str, sigma: float, l1_over_mu: float = 0.0) -> dp_accounting.DpEvent:
    """One round's mechanism for one client that takes part in it."""
    if mode == "central":
        return dp_accounting.GaussianDpEvent(sigma)
    return dp_accounting.ZCDpEvent(1.0 / (2.0 * sigma * sigma), 0.75 * l1_over_mu)


def epsilon_after(event: dp_accounting.DpEvent, rounds: int, delta: float) -> float:
    if rounds == 0:
        return 0.0
    acc = RdpAccountant()
    acc.compose(event, rounds)
    return float(acc.get_epsilon(delta))


def calibrate(mode: str, rounds: int, epsilon: float, delta: float, l1_over_mu_of: Callable[[float], float]) -> float:
    """The smallest noise multiplier with which `rounds` rounds of one client spend at most `epsilon`."""
    def event(sigma: float) -> dp_accounting.DpEvent:
        return dp_accounting.SelfComposedDpEvent(round_event(mode, sigma, l1_over_mu_of(sigma)), rounds)
    sigma = dp_accounting.calibrate_dp_mechanism(RdpAccountant, event, epsilon, delta,
                                                 dp_accounting.ExplicitBracketInterval(1e-3, 1e4), tol=1e-4)
    while epsilon_after(round_event(mode, sigma, l1_over_mu_of(sigma)), rounds, delta) > epsilon:
        sigma *= 1.0001  # the bracket's tolerance errs either way; the budget must hold
    return float(sigma)


class BudgetExhausted(RuntimeError):
    """The next round would take a client past the run's privacy budget."""


@dataclass
class Accountant:
    """Each client's rounds in a released private sum, and what they cost."""

    sec: PrivacySection
    sigma: float
    num_clients: int
    l1_over_mu: float = 0.0
    counts: np.ndarray = field(init=False)
    _eps: dict[int, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.counts = np.zeros(self.num_clients, np.int64)
        self.event = round_event(self.sec.dp, self.sigma, self.l1_over_mu)
        self.max_rounds = self._max_rounds()

    def epsilon_of(self, rounds: int) -> float:
        if rounds not in self._eps:
            self._eps[rounds] = epsilon_after(self.event, rounds, self.sec.delta)
        return self._eps[rounds]

    def _max_rounds(self) -> int:
        """The most rounds one client may take part in within the budget."""
        lo, hi = 0, 1
        while hi < MAX_PARTICIPATIONS and self.epsilon_of(hi) <= self.sec.epsilon:
            lo, hi = hi, hi * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.epsilon_of(mid) <= self.sec.epsilon else (lo, mid)
        return lo

    @property
    def epsilon(self) -> float:
        """The run's epsilon so far: the most any client has spent."""
        return self.epsilon_of(int(self.counts.max(initial=0)))

    def check(self, round_idx: int, clients: list[int]) -> None:
        """Raise BudgetExhausted when releasing round_idx with these clients would pass the budget."""
        over = [c for c in clients if self.counts[c] + 1 > self.max_rounds]
        if over:
            c = over[0]
            raise BudgetExhausted(
                f"privacy budget: round {round_idx} would be client {c}'s round {int(self.counts[c]) + 1}, taking it "
                f"to epsilon {self.epsilon_of(int(self.counts[c]) + 1):.3f} past privacy.epsilon = {self.sec.epsilon} "
                f"(delta {self.sec.delta}, noise multiplier {self.sigma:.4g}); the run stops after round "
                f"{round_idx - 1}")

    def spend(self, clients: list[int]) -> None:
        for c in clients:
            self.counts[c] += 1

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"privacy.participation": self.counts.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        counts = state.get("privacy.participation")
        if counts is None or counts.shape != (self.num_clients,):
            raise ValueError("the round log holds no privacy accounting for this run's clients; it cannot resume "
                             "a private run")
        self.counts = counts.astype(np.int64).copy()


def noise_multiplier(sec: PrivacySection, planned_rounds: int, l1_over_mu_of: Callable[[float], float]) -> float:
    """The configured multiplier, or the one calibrated for the most rounds any client is planned to take."""
    if sec.noise_multiplier:
        return sec.noise_multiplier
    return calibrate(sec.dp, max(1, planned_rounds), sec.epsilon, sec.delta, l1_over_mu_of)

