"""The one small interface every strategy implements, and the messages it exchanges.

A strategy object is shared by the coordinator and the clients: ``configure_round`` (coordinator) names the
round's clients and broadcast settings, ``local_work`` (client) turns local data into a few encoded scalars,
``aggregate`` (coordinator) turns the clients' scalars into a ``GlobalUpdate`` of (seed, coefficient) pairs,
and ``apply`` (every party) folds that update into its own exact fixed-point state.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from fedseed import rng_spec
from fedseed.codecs import check_codec, encode
from fedseed.directions import coef_to_int
from fedseed.objective import Batch, Objective
from fedseed.state import FlatState
from fedseed.zo import spsa_scalar

HEADER_BYTES = 16  # round, client/flags and lengths: the fixed part of every message


@dataclass
class StrategyConfig:
    """Settings shared by all strategies ([strategy] table); subclasses add their own."""

    name: str = "fedkseed"
    lr: float = 1e-5
    lr_schedule: str = "constant"  # constant | cosine | linear
    eps: float = 1e-3
    direction: str = "rademacher"
    local_steps: int = 10
    codec: str = "fp32"
    equal_weight: bool = False

    def validate(self) -> None:
        rng_spec.check_kind(self.direction)
        check_codec(self.codec)
        if self.lr_schedule not in ("constant", "cosine", "linear"):
            raise ValueError(f"strategy.lr_schedule: unknown schedule {self.lr_schedule!r}")
        for name in ("lr", "eps"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"strategy.{name} must be a finite number >= 0, got {v}")
        if self.local_steps < 1:
            raise ValueError(f"strategy.local_steps must be >= 1, got {self.local_steps}")

    @classmethod
    def keys(cls) -> set[str]:
        return {f.name for f in fields(cls)}


@dataclass
class RoundPlan:
    round: int
    clients: list[int]
    lr: float
    broadcast: dict = field(default_factory=dict)  # strategy-specific arrays every client receives
    broadcast_bytes: int = 0
    steps: dict = field(default_factory=dict)  # client -> local steps where a simulation makes them differ

    def local_steps(self, client: int, default: int) -> int:
        return int(self.steps.get(client, default))


@dataclass
class ClientResult:
    round: int
    client: int
    payload: bytes  # the encoded scalars (and any small strategy fields), exactly what goes on the wire
    num_samples: int
    train_loss: float
    skipped_steps: int = 0

    @property
    def wire_bytes(self) -> int:
        return HEADER_BYTES + len(self.payload)


@dataclass
class GlobalUpdate:
    """sum_k coef_k z(seed_k) over [start_k, stop_k) (whole buffer when absent), or a dense delta."""

    round: int
    kind: str
    seeds: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    coefs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # the canonical fp32 values
    starts: np.ndarray | None = None
    stops: np.ndarray | None = None
    pool_indices: np.ndarray | None = None  # when seeds come from a shared pool, indices travel instead
    dense: np.ndarray | None = None  # float32, first-order baseline only

    def coef_ints(self) -> np.ndarray:
        return np.asarray([coef_to_int(float(c), self.kind) for c in self.coefs], dtype=np.int64)

    def wire_bytes(self) -> int:
        n = len(self.coefs)
        if self.pool_indices is not None:
            per = 2 + 4
        else:
            per = 8 + 4 + (8 if self.starts is not None else 0)
        dense = 0 if self.dense is None else 4 * self.dense.size
        return HEADER_BYTES + n * per + dense

    def apply_to(self, state: FlatState) -> None:
        if self.dense is not None:
            state.apply_dense(torch.from_numpy(self.dense))
        else:
            state.apply_seeds(self.seeds, self.coef_ints(), self.kind, self.starts, self.stops)


@dataclass
class LocalContext:
    """What a client's local work may touch: its state, objective, and a deterministic batch stream."""

    state: FlatState
    objective: Objective
    next_batch: Callable[[], Batch]
    num_samples: int


def zo_local_steps(ctx: LocalContext, plan: RoundPlan, client: int, cfg: StrategyConfig,
                   seed_of: Callable[[int], int], grad_clip: float = 0.0) -> ClientResult:
    """The client's zeroth-order trajectory: one SPSA step per batch along z(seed_of(t)), each taken locally with
    the round's lr; a step whose |g| exceeds grad_clip (when set) is undone and reported as skipped (g = 0)."""
    scalars, losses, skipped = [], [], 0
    for t in range(plan.local_steps(client, cfg.local_steps)):
        batch = ctx.next_batch()
        seed = seed_of(t)
        res = spsa_scalar(ctx.state, seed, cfg.eps, cfg.direction,
                          lambda b=batch: ctx.objective.loss(ctx.state.model, b), lr=plan.lr)
        if not res.skipped and grad_clip and abs(res.g) > grad_clip:
            ctx.state.engine.perturb(ctx.state.w, 0, seed, plan.lr * res.g, cfg.direction)
            res.skipped, res.g = True, 0.0
        skipped += res.skipped
        scalars.append(res.g)
        if not res.skipped:
            losses.append(res.loss)
    return ClientResult(plan.round, client, encode(np.asarray(scalars), cfg.codec), ctx.num_samples,
                        float(np.mean(losses)) if losses else float("nan"), skipped)


def scheduled_lr(lr: float, schedule: str, round_idx: int, total_rounds: int) -> float:
    if schedule == "constant" or total_rounds <= 1:
        return lr
    frac = (round_idx - 1) / (total_rounds - 1)
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * frac))
    return lr * (1.0 - frac)


def client_weights(results: list[ClientResult], equal: bool) -> np.ndarray:
    n = np.asarray([1.0 if equal else float(r.num_samples) for r in results])
    if n.sum() <= 0:
        raise ValueError("clients reported no samples")
    return n / n.sum()


def as_fp32(values: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).astype(np.float32)
    if not np.isfinite(out).all():
        raise ValueError("aggregated coefficients are not finite")
    return out


class Strategy(ABC):
    name: str = ""
    config_class: type[StrategyConfig] = StrategyConfig
    # Over the network a round's update travels as the clients' relayed scalars when every party can aggregate
    # them from (round, lr, results) alone; otherwise as (seed, coefficient) pairs.
    relayable: bool = True
    samples_clients: bool = True  # False: every active participant takes part in every round
    networked: bool = True  # False: a simulation-only baseline (dense weights do not fit the seed protocol)
    varies_steps: bool = True  # False: the number of local steps is fixed by the method (simulation knob refused)

    def __init__(self, cfg: StrategyConfig, run_seed: int, total_rounds: int, num_clients: int) -> None:
        cfg.validate()
        self.cfg = cfg
        self.run_seed = run_seed
        self.total_rounds = total_rounds
        self.num_clients = num_clients

    def configure_round(self, round_idx: int, clients: list[int]) -> RoundPlan:
        lr = scheduled_lr(self.cfg.lr, self.cfg.lr_schedule, round_idx, self.total_rounds)
        return RoundPlan(round_idx, sorted(clients), lr)

    def encode_broadcast(self, plan: RoundPlan) -> bytes:
        """The plan's strategy-specific arrays as bytes for a round task (none by default)."""
        return b""

    def decode_broadcast(self, data: bytes) -> dict:
        if data:
            raise ValueError(f"strategy {self.name} expects no broadcast, got {len(data)} bytes")
        return {}

    def steps_per_round(self) -> int:
        """Scalars a client computes in a round (the most steps it can report as skipped)."""
        return self.cfg.local_steps

    def check_result(self, plan: RoundPlan, result: ClientResult) -> None:  # noqa: B027 (optional hook)
        """Raise ValueError for a result this strategy must refuse beyond what aggregating it alone shows. The
        coordinator aggregates every result alone and checks the coefficients and the state's bound; that bounds
        any round the result joins because aggregation is a weighted average of the clients' own updates (every
        strategy here): a convex combination of coefficients within the bound stays within it."""

    @abstractmethod
    def local_work(self, ctx: LocalContext, plan: RoundPlan, client: int) -> ClientResult: ...

    @abstractmethod
    def aggregate(self, plan: RoundPlan, results: list[ClientResult]) -> GlobalUpdate: ...

    def observe(self, plan: RoundPlan, results: list[ClientResult]) -> None:  # noqa: B027 (optional hook)
        """Coordinator-side bookkeeping after a round (replayed from the log on restart)."""

    def apply(self, state: FlatState, update: GlobalUpdate) -> None:
        update.apply_to(state)
