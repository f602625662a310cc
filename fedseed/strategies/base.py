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
from typing import Any

import numpy as np
import torch

from fedseed import rng_spec
from fedseed.codecs import BYTES_PER_SCALAR, check_codec, encode
from fedseed.directions import coef_to_int
from fedseed.layout import Layout
from fedseed.objective import Batch, Objective
from fedseed.robust import Combined, Contribution, RobustSection, combine, outliers
from fedseed.state import ModelState
from fedseed.zo import spsa_scalar


@dataclass
class StrategyConfig:
    """Settings shared by all strategies ([strategy] table); subclasses add their own."""

    name: str = "fedkseed"
    lr: float = 1e-5
    lr_schedule: str = "constant"  # constant | cosine | linear
    lr_relative: bool = False  # lr is the median step lr * |g|: divided by the |g| measured at the start
    eps: float = 1e-3
    direction: str = "rademacher"
    local_steps: int = 10
    codec: str = "fp32"

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

    def negated(self) -> GlobalUpdate:
        """The update that undoes this one exactly (fixed-point rounding is symmetric about zero)."""
        return GlobalUpdate(self.round, self.kind, self.seeds, -self.coefs, self.starts, self.stops, self.pool_indices,
                            None if self.dense is None else -self.dense)

    def coef_ints(self) -> np.ndarray:
        return np.asarray([coef_to_int(float(c), self.kind) for c in self.coefs], dtype=np.int64)

    def apply_to(self, state: ModelState) -> None:
        if self.dense is not None:
            state.apply_dense(torch.from_numpy(self.dense))
        else:
            state.apply_seeds(self.seeds, self.coef_ints(), self.kind, self.starts, self.stops)


@dataclass
class LocalContext:
    """What a client's local work may touch: its state, objective, and a deterministic batch stream."""

    state: ModelState
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
            ctx.state.step(seed, plan.lr * res.g, cfg.direction)
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


def as_fp32(values: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).astype(np.float32)
    if not np.isfinite(out).all():
        raise ValueError("aggregated coefficients are not finite")
    return out


@dataclass(frozen=True)
class RunSetup:
    """What a strategy learns of the run it serves; every party builds the same one from the run's config."""

    seed: int
    rounds: int
    num_clients: int
    layout: Layout
    robust: RobustSection = field(default_factory=RobustSection)  # the bounds every party's aggregation applies


class Strategy(ABC):
    """A federated algorithm. Construct it with its settings (a config object, or keywords of its config class),
    then every party binds it to the run with ``setup``.

    Contract: ``configure_round`` runs where rounds are planned; ``local_work`` on a client; ``aggregate`` on
    every party that rebuilds an update (coordinator, clients receiving relayed results), so it must be pure --
    a function of (plan, results) and the run setup, changing no state; ``observe`` updates coordinator-side
    state after a round, which ``state_dict`` / ``load_state_dict`` save in the round log and restore.
    """

    name: str = ""
    config_class: type[StrategyConfig] = StrategyConfig
    # Over the network a round's update travels as the clients' relayed scalars when every party can aggregate
    # them from (round, lr, results) alone; otherwise as (seed, coefficient) pairs.
    relayable: bool = True
    samples_clients: bool = True  # False: every active participant takes part in every round
    networked: bool = True  # False: a simulation-only baseline (dense weights do not fit the seed protocol)
    first_order: bool = False  # True: local training backpropagates, so it needs resident (wide) weights
    varies_steps: bool = True  # False: the number of local steps is fixed by the method (simulation knob refused)
    centralized: bool = False  # True: one party trains alone, so nothing travels
    weights_clients: bool = True  # False: every client counts the same whatever num_samples it claims
    needs_adapter: bool = False  # True: the method trains an [adapter] (LoRA), never the full parameters
    # True: a step is lr * g * z with g the SPSA projected gradient, so strategy.lr_relative can set lr
    steps_along_spsa_scalars: bool = False
    g_scale: float = 1.0  # the median |g| the run's lr is relative to (1: an absolute lr)

    def __init__(self, cfg: StrategyConfig | None = None, /, **settings: Any) -> None:
        if cfg is None:  # keywords are checked like a [strategy] table: by key, type and element
            from fedseed.config_models import validate_tables

            table = {"name": self.name} | settings
            cfg = validate_tables({"strategy": table}, (("strategy", self.config_class),))["strategy"]
        elif settings:
            raise ValueError(f"strategy {self.name}: give a config object or settings, not both")
        cfg.validate()
        self.cfg = cfg
        self._run: RunSetup | None = None

    def setup(self, run: RunSetup) -> Strategy:
        """Bind to a run (every party, before its first round); subclasses derive run-specific tables here."""
        self._run = run
        return self

    @property
    def run(self) -> RunSetup:
        if self._run is None:
            raise RuntimeError(f"strategy {self.name} is not set up for a run (call setup(RunSetup(...)))")
        return self._run

    @property
    def run_seed(self) -> int:
        return self.run.seed

    @property
    def total_rounds(self) -> int:
        return self.run.rounds

    @property
    def num_clients(self) -> int:
        return self.run.num_clients

    def seed_pool(self) -> np.ndarray | None:
        """The fixed seeds that pool indices on the wire refer to (None: seeds travel themselves)."""
        return None

    def state_dict(self) -> dict[str, np.ndarray]:
        """Coordinator-side state that ``observe`` builds (arrays only), saved in the log after every round."""
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if state:
            raise ValueError(f"strategy {self.name} keeps no state, got {sorted(state)}")

    def lr(self, round_idx: int) -> float:
        """The round's learning rate under the configured schedule (the only place it is computed)."""
        return scheduled_lr(self.cfg.lr / self.g_scale, self.cfg.lr_schedule, round_idx, self.total_rounds)

    def configure_round(self, round_idx: int, clients: list[int]) -> RoundPlan:
        return RoundPlan(round_idx, sorted(clients), self.lr(round_idx))

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

    def passes(self, steps: int) -> tuple[int, int]:
        """The forward and backward passes of a client's local work of `steps` steps (evaluation aside): two
        forwards a two-point zeroth-order step, one forward and one backward a first-order one."""
        return (steps, steps) if self.first_order else (2 * steps, 0)

    def max_payload_bytes(self) -> int:
        """The largest payload a legal result has: steps_per_round() scalars in the run's codec (a simulation may
        give a client fewer local steps, never more). Longer payloads are refused; it sizes the coordinator's
        message limit."""
        return self.steps_per_round() * BYTES_PER_SCALAR[self.cfg.codec]

    def check_result(self, plan: RoundPlan, result: ClientResult) -> None:  # noqa: B027 (optional hook)
        """Raise ValueError for a result this strategy must refuse beyond what aggregating it alone shows. The
        coordinator aggregates every result alone and checks the coefficients and the state's bound; that bounds
        any round the result joins because aggregation is a weighted average of the clients' own updates (every
        strategy here): a convex combination of coefficients within the bound stays within it."""

    @abstractmethod
    def local_work(self, ctx: LocalContext, plan: RoundPlan, client: int) -> ClientResult: ...

    @classmethod
    def shares_seeds(cls, cfg: StrategyConfig) -> bool:
        """True when a round's clients put their scalars on the same keys (coordinate-wise rules apply)."""
        return False

    def contributions(self, plan: RoundPlan, results: list[ClientResult]) -> list[Contribution]:
        """Each result's scalars on keys of the strategy's seed space (ValueError for a malformed payload)."""
        raise NotImplementedError(f"strategy {self.name} defines neither contributions nor aggregate")

    def private_keys(self, plan: RoundPlan, length: int) -> np.ndarray:
        """The keys of a private round's vector elements, shared by every client of the round."""
        raise NotImplementedError(f"strategy {self.name} has no private rounds")

    def update_from(self, plan: RoundPlan, combined: Combined) -> GlobalUpdate:
        """The global update of the round's combined per-key values."""
        raise NotImplementedError(f"strategy {self.name} defines neither update_from nor aggregate")

    def aggregate(self, plan: RoundPlan, results: list[ClientResult]) -> GlobalUpdate:
        """The round's update: contributions combined under the run's bounds (``fedseed.robust``)."""
        combined = combine(self.contributions(plan, results), self.run.robust, self.weights_clients)
        return self.update_from(plan, combined)

    def outliers(self, plan: RoundPlan, results: list[ClientResult]) -> dict[int, str]:
        """Results to leave out of the round before aggregating (client -> why), by the run's outlier rule."""
        if self.centralized or not self.run.robust.outlier_factor:
            return {}
        return outliers(self.contributions(plan, results), self.run.robust)

    def observe(self, plan: RoundPlan, results: list[ClientResult]) -> None:  # noqa: B027 (optional hook)
        """Coordinator-side bookkeeping after a round (replayed from the log on restart)."""

    def observe_combined(self, plan: RoundPlan, combined: Combined) -> None:  # noqa: B027 (optional hook)
        """The same after a private round, from its released per-key values alone."""

    def apply(self, state: ModelState, update: GlobalUpdate) -> None:
        update.apply_to(state)
