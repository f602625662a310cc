"""Bounded influence: how a round's contributions are combined so that no client -- admitted or not, honest or
not -- moves the model further than the run allows. Every party runs this arithmetic on the same inputs (the
coordinator when it aggregates, a client when it aggregates relayed results), so the update stays exact.

A strategy states each client's contribution as scalars on keys of a seed space (FedKSeed: pool indices;
Ferret and one-byte SPSA: the seeds themselves). Then, in this order:

1. every scalar is clipped to the round's bound: ``clip`` (absolute) and/or ``clip_factor`` x the median
   |scalar| of the round (a minority of clients cannot move that median past the honest clients' range);
2. each client's vector (scalars summed per key) is scaled to at most ``norm_factor`` x the round's lower
   median client norm (``lower_median``: up to half of the clients cannot move it past the honest values);
3. client weights from the claimed sample counts, which a client cannot inflate: ``equal``, ``capped`` (a claim
   counts at most ``weight_cap`` x the round's lower median claim) or ``samples`` (trusted, the papers' rule);
4. the rule: ``mean`` (weighted), or coordinate-wise ``median`` / ``trimmed_mean`` (unweighted), which need
   keys the round's clients share (FedKSeed with shared_seeds);
5. each key's aggregate is clamped to the scalar bound (a client drawing one seed twice gains nothing).

Outlier rejection (``outlier_factor``) leaves out of the round, before any of this, a client whose vector norm
exceeds that factor x the lower median client norm; the round machine records it as dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

WEIGHTINGS = ("equal", "capped", "samples")
RULES = ("mean", "median", "trimmed_mean")
ON_DIVERGENCE = ("rollback", "flag", "stop")
DEFAULT_CLIP_FACTOR = 10.0


@dataclass
class RobustSection:
    """The [robust] table: what the coordinator enforces on every contribution and round."""

    weighting: str = "equal"  # equal | capped | samples
    weight_cap: float = 1.0  # capped: a claim counts at most this x the round's median claim
    clip: float = 0.0  # absolute bound on every |scalar| (0: none)
    # > 0: bound every |scalar| by this x the round's lower median |scalar|; 10 leaves 1.5-2.6% of honest
    # scalars clipped on SmolLM2 and Gemma 3 (bench/grad_scale.py) and stops one wild probe; a private run
    # resolves it to 0 unless set (privacy.clip bounds its contributions instead).
    clip_factor: float = DEFAULT_CLIP_FACTOR
    norm_factor: float = 1.5  # bound each client's vector norm by this x the round's median norm (0: off)
    rule: str = "mean"  # mean | median | trimmed_mean
    trim_fraction: float = 0.2  # trimmed_mean: share of clients dropped at each end of every coordinate
    outlier_factor: float = 0.0  # > 0: leave out a client whose norm exceeds this x the median norm
    divergence_factor: float = 1.5  # > 0: a round raising the guard loss past this factor is flagged
    on_divergence: str = "rollback"  # rollback | flag | stop (roll back, then end the run)
    guard_examples: int = 32  # held-out examples whose loss the guard compares before and after each round

    def validate(self) -> None:
        choices = (("weighting", WEIGHTINGS), ("rule", RULES), ("on_divergence", ON_DIVERGENCE))
        for key, allowed in choices:
            if getattr(self, key) not in allowed:
                raise ValueError(f"config key 'robust.{key}' must be one of {', '.join(allowed)}, "
                                 f"got {getattr(self, key)!r}")
        for key in ("clip", "clip_factor", "norm_factor", "outlier_factor", "divergence_factor"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"config key 'robust.{key}' must be a finite number >= 0 (0: off), got {v}")
        if not (math.isfinite(self.weight_cap) and self.weight_cap > 0):
            raise ValueError(f"config key 'robust.weight_cap' must be > 0, got {self.weight_cap}")
        if not 0 <= self.trim_fraction < 0.5:
            raise ValueError(f"config key 'robust.trim_fraction' must be in [0, 0.5), got {self.trim_fraction}")
        if self.divergence_factor and self.divergence_factor <= 1:
            raise ValueError("config key 'robust.divergence_factor' must be > 1 (or 0: off), "
                             f"got {self.divergence_factor}")
        if self.guard_examples < 1:
            raise ValueError(f"config key 'robust.guard_examples' must be >= 1, got {self.guard_examples}")


# The papers' rules: the data-weighted mean, no bounds, no guard.
UNBOUNDED = RobustSection(weighting="samples", clip_factor=0.0, norm_factor=0.0, divergence_factor=0.0)


@dataclass
class Contribution:
    """One client's scalars in seed space: ``values[t]`` on key ``keys[t]`` (keys may repeat)."""

    client: int
    keys: np.ndarray  # int64
    values: np.ndarray  # float64
    num_samples: int = 1
    tags: np.ndarray | None = None  # int64 per scalar, carried to the combined keys (Ferret: the block)


@dataclass
class Combined:
    """The round's aggregate: one value per distinct key, keys ascending."""

    keys: np.ndarray
    values: np.ndarray
    tags: np.ndarray | None = None
    bound: float = math.inf  # the scalar bound the round used
    scales: dict[int, float] = field(default_factory=dict)  # client -> factor its vector was scaled by (< 1)


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else 0.0


def l2_norm(values: np.ndarray) -> float:
    """sqrt of the squares summed in index order, in float64: the same bits on every machine (a BLAS dot
    product, as numpy.linalg.norm uses, sums in an order that depends on the CPU's kernel)."""
    v = np.asarray(values, dtype=np.float64)
    return math.sqrt(float(np.cumsum(v * v)[-1])) if v.size else 0.0


def lower_median(values: np.ndarray) -> float:
    """The ceil(m/2)-th smallest of m values: the centre the bounds scale from. Half of a round's clients (two of
    four) cannot move it past the honest clients' values, where the usual median of an even count averages in an
    attacker's."""
    return float(np.sort(values)[(values.size - 1) // 2]) if values.size else 0.0


def scalar_bound(contribs: list[Contribution], cfg: RobustSection) -> float:
    """The round's bound on every |scalar| (inf: none)."""
    bound = cfg.clip or math.inf
    if cfg.clip_factor:
        mags = np.abs(np.concatenate([c.values for c in contribs])) if contribs else np.zeros(0)
        mags = mags[mags > 0]  # skipped steps report 0 and say nothing of the scale
        if mags.size:
            bound = min(bound, cfg.clip_factor * lower_median(mags))
    return bound


def clipped(contribs: list[Contribution], cfg: RobustSection) -> tuple[list[Contribution], float]:
    """Every scalar clipped to the round's bound (non-finite scalars are refused); and the bound."""
    for c in contribs:
        if not np.isfinite(c.values).all():
            raise ValueError(f"client {c.client} sent non-finite scalars")
    bound = scalar_bound(contribs, cfg)
    if math.isinf(bound):
        return contribs, bound
    return [Contribution(c.client, c.keys, np.clip(c.values, -bound, bound), c.num_samples, c.tags)
            for c in contribs], bound


def per_key(c: Contribution) -> tuple[np.ndarray, np.ndarray]:
    """The client's vector: distinct keys (ascending) and the sum of its scalars on each."""
    keys, inverse = np.unique(c.keys, return_inverse=True)
    sums = np.zeros(keys.size, np.float64)
    np.add.at(sums, inverse, c.values)
    return keys, sums


def norms(contribs: list[Contribution]) -> np.ndarray:
    return np.asarray([l2_norm(per_key(c)[1]) for c in contribs])


def outliers(contribs: list[Contribution], cfg: RobustSection) -> dict[int, str]:
    """Clients to leave out of the round (client -> why): vector norm past outlier_factor x the median norm."""
    if not cfg.outlier_factor or len(contribs) < 3:  # with two, neither is the outlier of the other
        return {}
    clipped_contribs, _ = clipped(contribs, cfg)
    n = norms(clipped_contribs)
    limit = cfg.outlier_factor * lower_median(n[n > 0])
    return {c.client: f"an outlier: its norm {v:.4g} exceeds {cfg.outlier_factor} x the round's median norm "
                      f"({limit:.4g})" for c, v in zip(contribs, n) if limit > 0 and v > limit}


def client_weights(claims: list[int], cfg: RobustSection, weighted: bool = True) -> np.ndarray:
    """Weights summing to 1 from the clients' claimed sample counts (equal when the strategy ignores them)."""
    n = np.asarray(claims, dtype=np.float64)
    if n.size == 0 or (n <= 0).any():
        raise ValueError("every client must report at least one sample")
    if not weighted or cfg.weighting == "equal":
        n = np.ones_like(n)
    elif cfg.weighting == "capped":
        n = np.minimum(n, cfg.weight_cap * lower_median(n))
    return n / n.sum()


def _coordinatewise(keys: np.ndarray, rows: list[tuple[np.ndarray, np.ndarray]], rule: str,
                    trim: float) -> np.ndarray:
    """Per key, the median or trimmed mean over the clients that have it."""
    pos = np.concatenate([np.searchsorted(keys, k) for k, _ in rows])
    vals = np.concatenate([v for _, v in rows])
    order = np.lexsort((vals, pos))
    pos, vals = pos[order], vals[order]
    starts = np.searchsorted(pos, np.arange(keys.size))
    stops = np.searchsorted(pos, np.arange(keys.size), side="right")
    out = np.zeros(keys.size, np.float64)
    for j, (lo, hi) in enumerate(zip(starts, stops)):
        group = vals[lo:hi]  # sorted ascending
        if rule == "median":
            out[j] = _median(group)
        else:
            t = int(math.floor(trim * group.size))
            out[j] = float(np.mean(group[t:group.size - t]))
    return out


def combine(contribs: list[Contribution], cfg: RobustSection, weighted: bool = True) -> Combined:
    """The round's aggregate per key under the run's bounds (see the module docstring for the order)."""
    if not contribs:
        raise ValueError("no contributions to combine")
    contribs, bound = clipped(contribs, cfg)
    rows = [per_key(c) for c in contribs]
    scales: dict[int, float] = {}
    if cfg.norm_factor:
        n = np.asarray([l2_norm(v) for _, v in rows])
        limit = cfg.norm_factor * lower_median(n[n > 0]) if (n > 0).any() else 0.0
        for i, c in enumerate(contribs):
            if limit > 0 and n[i] > limit:
                scales[c.client] = limit / n[i]
                rows[i] = (rows[i][0], rows[i][1] * (limit / n[i]))
    keys = np.unique(np.concatenate([k for k, _ in rows]))
    if cfg.rule == "mean":
        weights = client_weights([c.num_samples for c in contribs], cfg, weighted)
        values = np.zeros(keys.size, np.float64)
        for w, (k, v) in zip(weights, rows):  # client order: the float64 sum is the same on every party
            values[np.searchsorted(keys, k)] += w * v
    else:
        values = _coordinatewise(keys, rows, cfg.rule, cfg.trim_fraction)
    if not math.isinf(bound):
        values = np.clip(values, -bound, bound)
    return Combined(keys, values, _tags(keys, contribs), bound, scales)


def _tags(keys: np.ndarray, contribs: list[Contribution]) -> np.ndarray | None:
    if any(c.tags is None for c in contribs):
        return None
    all_keys = np.concatenate([c.keys for c in contribs])
    all_tags = np.concatenate([c.tags for c in contribs])
    first = np.unique(all_keys, return_index=True)[1]  # a key's tag is the same wherever it appears
    return all_tags[first]
