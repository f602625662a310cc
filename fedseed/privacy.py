"""The [privacy] table: secure aggregation of a round's scalars and differential privacy of each client's
contribution (docs/privacy.md). A private round needs the scalars of every client on the same keys, so it runs
FedKSeed or FedKSeed-Pro with shared seeds; the bounds that need individual values (coordinate-wise rules,
outlier rejection, median-based clips, claimed sample counts) cannot be enforced on a masked sum and are refused
by name."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedseed.config import Config

DP_MODES = ("off", "central", "distributed")
PRIVATE_STRATEGIES = ("fedkseed", "fedkseed-pro")


@dataclass
class PrivacySection:
    secure_aggregation: bool = False  # the coordinator learns only sums of a round's quantized scalars
    dp: str = "off"  # off | central (the coordinator adds Gaussian noise) | distributed (each client adds Skellam)
    clip: float = 0.0  # L2 bound of one client's vector of scalars in a round (required when private)
    epsilon: float = 0.0  # dp: the run's budget; no client's epsilon may pass it
    delta: float = 1e-5
    noise_multiplier: float = 0.0  # dp: noise std / clip; 0: calibrated so the run's planned rounds fit the budget
    min_clients: int = 3  # no sum over fewer clients is unmasked or released
    neighbours: int = 0  # secure aggregation's neighbour graph degree k (0: every client neighbours every other)
    stage_timeout_s: float = 30.0  # coordinator: how long the key, share and unmask stages wait for their clients

    @property
    def private(self) -> bool:
        return self.secure_aggregation or self.dp != "off"

    def validate(self) -> None:
        if self.dp not in DP_MODES:
            raise ValueError(f"config key 'privacy.dp' must be one of {', '.join(DP_MODES)}, got {self.dp!r}")
        if self.dp == "distributed" and not self.secure_aggregation:
            raise ValueError("config key 'privacy.dp': distributed noise is only private under secure aggregation "
                             "(each client's share of the noise is too small alone): set "
                             "privacy.secure_aggregation = true, or dp = \"central\"")
        for key in ("clip", "epsilon", "noise_multiplier", "stage_timeout_s"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"config key 'privacy.{key}' must be a finite number >= 0, got {v}")
        if self.private and not self.clip > 0:
            raise ValueError("config key 'privacy.clip' must be > 0 in a private run: it bounds each client's "
                             "contribution (the L2 norm of its round's scalars), which quantization and the noise "
                             "are scaled to")
        if self.dp != "off":
            if not self.epsilon > 0:
                raise ValueError("config key 'privacy.epsilon' must be > 0 with privacy.dp on: it is the run's "
                                 "privacy budget")
            if not 0 < self.delta < 1:
                raise ValueError(f"config key 'privacy.delta' must be in (0, 1), got {self.delta}")
        if self.min_clients < (2 if self.secure_aggregation else 1):
            raise ValueError(f"config key 'privacy.min_clients' must be >= 2 with secure aggregation (a sum over "
                             f"one client is that client's value), got {self.min_clients}")
        if self.neighbours < 0 or self.neighbours == 1:
            raise ValueError(f"config key 'privacy.neighbours' must be 0 (complete) or >= 2, got {self.neighbours}")


def check_private_run(cfg: Config) -> None:
    """Refuse (ValueError) what a private run cannot do, naming the key."""
    p = cfg.privacy
    if not p.private:
        return
    if cfg.strategy.name not in PRIVATE_STRATEGIES or not getattr(cfg.strategy, "shared_seeds", False):
        raise ValueError(f"config key 'privacy': a private round sums every client's scalars on shared seeds, so it "
                         "needs strategy.name = \"fedkseed\" or \"fedkseed-pro\" with strategy.shared_seeds = true "
                         f"(got {cfg.strategy.name!r}, shared_seeds = {getattr(cfg.strategy, 'shared_seeds', False)}); "
                         "with seeds of their own, one client's seed would reveal its scalar in the sum")
    r = cfg.robust
    needs_individual = [("robust.rule", r.rule != "mean", "coordinate-wise rules read every client's values"),
                        ("robust.outlier_factor", r.outlier_factor > 0, "outlier rejection reads every client's norm"),
                        ("robust.clip_factor", r.clip_factor > 0, "a median-based clip reads every client's scalars"),
                        ("robust.weighting", r.weighting != "equal", "sample counts are the clients' own")]
    for key, bad, why in needs_individual:
        if bad:
            raise ValueError(f"config key '{key}' cannot apply to a private round ({why}); privacy.clip bounds "
                             "every contribution instead")
    if cfg.federation.clients_per_round < p.min_clients:
        raise ValueError(f"config key 'privacy.min_clients' ({p.min_clients}) exceeds federation.clients_per_round "
                         f"({cfg.federation.clients_per_round}): no round could be released")
