"""The model's trainable weights as one flat buffer, and the global state as base + exact fixed-point delta.

``w`` (fp32) is what the model computes with: every trainable parameter is a view into it. ``w0`` is the base
model's weights and ``delta`` (int64, units of 2**-56) the sum of every applied global update, so the global
weights are always ``w = w0 + float32(delta) * 2**-56`` -- a pure function of (base, delta). Local work
(perturbations, local steps) changes ``w`` only and is discarded exactly by re-materialising.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from fedseed import rng_spec
from fedseed.directions import DELTA_SHIFT, DirectionEngine
from fedseed.layout import Layout

if TYPE_CHECKING:
    from fedseed.strategies.base import GlobalUpdate

Z_INT_MAX = {"rademacher": 1, "gaussian": int(np.abs(rng_spec.gauss_table()).max())}
DELTA_BOUND_LIMIT = 2**62  # below int64's range with room for one more update's rounding


def seed_growth(coef_ints: np.ndarray, kind: str) -> int:
    """How much a seed update can add to max |delta|: sum |c_k| * max |z_int|."""
    return int(np.abs(coef_ints).sum()) * Z_INT_MAX[kind]


class ModelState(Protocol):
    """What strategies, the round machine and replay use of a state, wide or compact."""

    format: str
    model: torch.nn.Module
    layout: Layout
    engine: DirectionEngine

    def perturb(self, seed: int, scale: float, kind: str) -> None: ...
    def step(self, seed: int, coef: float, kind: str) -> bool: ...
    def unperturb_and_step(self, seed: int, eps: float, coef: float, kind: str) -> bool: ...
    def restore(self) -> None: ...
    def apply_seeds(self, seeds: np.ndarray, coef_ints: np.ndarray, kind: str,
                    starts: np.ndarray | None = None, stops: np.ndarray | None = None) -> None: ...
    def apply_rounds(self, updates: list[GlobalUpdate]) -> None: ...
    def apply_dense(self, update: torch.Tensor) -> None: ...
    def add_dense(self, update: torch.Tensor) -> None: ...
    def checksum(self) -> str: ...
    def room(self) -> Any: ...
    def set_room(self, room: Any) -> None: ...
    def resident(self) -> contextlib.AbstractContextManager[None]: ...


class FlatState:
    format = "wide"

    def __init__(self, model: torch.nn.Module, layout: Layout, engine: DirectionEngine) -> None:
        params = dict(model.named_parameters())
        device = next(iter(params.values())).device
        self.layout = layout
        self.engine = engine
        self.model = model
        self.w = torch.zeros(layout.size, dtype=torch.float32, device=device)
        for slot in layout.slots:
            p = params[slot.name]
            if p.dtype != torch.float32:
                raise ValueError(f"parameter {slot.name} is {p.dtype}; the wide state's master weights must be "
                                 "float32 (load the model in float32, or use model.state = \"compact\")")
            view = self.w[slot.offset:slot.offset + slot.numel].view(slot.shape)
            view.copy_(p.data)
            p.data = view  # the model now computes with the flat buffer
        self.w0 = self.w.clone()
        self.delta = torch.zeros(layout.size, dtype=torch.int64, device=device)
        self.delta_bound = 0  # an upper bound of max |delta|, kept on the host

    @property
    def device(self) -> torch.device:
        return self.w.device

    def restore(self) -> None:
        """Discard local work: w = w0 + delta."""
        self.engine.materialize(self.w, self.w0, self.delta)

    def perturb(self, seed: int, scale: float, kind: str) -> None:
        """The computed weights move by scale * z(seed) (local work, discarded by restore)."""
        self.engine.perturb(self.w, 0, seed, scale, kind)

    def step(self, seed: int, coef: float, kind: str) -> bool:
        """A local step w += coef z(seed)."""
        self.engine.perturb(self.w, 0, seed, coef, kind)
        return True

    def unperturb_and_step(self, seed: int, eps: float, coef: float, kind: str) -> bool:
        """From w - eps z back to w, then w += coef z: one pass for rademacher (scale * (+-1) is exact, so
        the two terms fold into one), two roundings kept for gaussian."""
        if coef and kind == "rademacher":
            self.engine.perturb(self.w, 0, seed, eps + coef, kind)
        elif coef:
            self.engine.perturb_twice(self.w, 0, seed, eps, coef, kind)
        else:
            self.engine.perturb(self.w, 0, seed, eps, kind)
        return True

    def apply_rounds(self, updates: list[GlobalUpdate]) -> None:
        """Many rounds' seed updates in one pass: coefficients summed per (seed, range) first, which is exact
        in 2**-56 units."""
        from fedseed.roundlog import merged_seed_coefs

        kind, merged = merged_seed_coefs(updates)
        self.apply_seeds(np.asarray([m[0] for m in merged], np.int64), np.asarray([m[3] for m in merged], np.int64),
                         kind, np.asarray([m[1] if m[1] >= 0 else 0 for m in merged], np.int64),
                         np.asarray([m[2] if m[2] >= 0 else self.layout.size for m in merged], np.int64))

    def room(self) -> int:
        return self.delta_bound

    def set_room(self, room: int) -> None:
        self.delta_bound = room

    @contextlib.contextmanager
    def resident(self) -> Iterator[None]:
        """The model's parameters always hold the computed weights here."""
        yield

    def global_weights(self, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """A new tensor holding w0 + delta over [lo, hi): the state local work started from."""
        hi = self.layout.size if hi is None else hi
        out = torch.empty_like(self.w[lo:hi])
        self.engine.materialize(out, self.w0[lo:hi], self.delta[lo:hi])
        return out

    def apply_seeds(self, seeds: np.ndarray, coef_ints: np.ndarray, kind: str,
                    starts: np.ndarray | None = None, stops: np.ndarray | None = None) -> None:
        """delta += sum_k coef_k z(seed_k) (on [start_k, stop_k) when given), then re-materialise w."""
        self._grow_bound(seed_growth(coef_ints, kind))
        ranges: dict[tuple[int, int], tuple[list[int], list[int]]] = {}  # one pass per range for all its seeds
        for k, (seed, c) in enumerate(zip(seeds.tolist(), coef_ints.tolist())):
            lo = 0 if starts is None else int(starts[k])
            hi = self.layout.size if stops is None else int(stops[k])
            group = ranges.setdefault((lo, hi), ([], []))
            group[0].append(int(seed))
            group[1].append(int(c))
        for (lo, hi), (group_seeds, group_coefs) in ranges.items():
            self.engine.accumulate_many(self.delta[lo:hi], lo, group_seeds, group_coefs, kind)
        self.restore()

    def apply_dense(self, update: torch.Tensor) -> None:
        """delta += round(update / 2**-56) elementwise (the first-order baseline's dense update)."""
        self.add_dense(update)
        self.restore()

    def add_dense(self, update: torch.Tensor) -> None:
        ints = torch.round(update.to(torch.float64) * 2.0**DELTA_SHIFT).to(torch.int64)
        self._grow_bound(int(ints.abs().max()) if ints.numel() else 0)
        self.delta.add_(ints.to(self.device))

    def _grow_bound(self, amount: int) -> None:
        """Refuse an update that could overflow int64 delta (a conservative running bound)."""
        if self.delta_bound + amount >= DELTA_BOUND_LIMIT:
            raise ValueError("update would overflow the fixed-point state: coefficients are far too large")
        self.delta_bound += amount

    def checksum(self) -> str:
        """blake2b of the materialised trainable weights (the state every party must agree on)."""
        h = hashlib.blake2b(digest_size=16)
        h.update(self.w.detach().to("cpu").numpy().tobytes())
        return h.hexdigest()


STATE_FORMATS = ("wide", "compact")


def build_state(fmt: str, model: torch.nn.Module, layout: Layout, engine: DirectionEngine,
                compute_dtype: torch.dtype = torch.float32) -> ModelState:
    """The state of a run's format: "wide" (fp32 weights + fp32 base + int64 delta) or "compact" (int32 only).
    Both hold fp32 trainable weights for the forward; a half compute_dtype is autocast (objective.Objective), so
    frozen weights may stay in their stored half dtype. (On CPU, autocast over fp32 weights and activations ran a
    SmolLM2 forward 2.6x faster than fp32 where a model held wholly in bf16 ran 1.5x: bf16 elementwise kernels
    are slow there; docs/performance.md.)"""
    if fmt == "compact":
        from fedseed.compact import CompactState

        return CompactState(model, layout, engine, keep_frozen=compute_dtype != torch.float32)
    if fmt != "wide":
        raise ValueError(f"unknown state format {fmt!r}; expected one of {', '.join(STATE_FORMATS)}")
    return FlatState(model, layout, engine)


def loads_as_stored(fmt: str) -> bool:
    """Whether a state builds from the checkpoint's own dtype: the compact one does (exact, and half the bytes of
    fp32 for a bf16 checkpoint while it loads); the wide one's layouts were always of fp32 weights."""
    return fmt == "compact"


def state_format(config: dict) -> str:
    """The state format of a run from its recorded config; a log written before the compact state existed has
    no such key and is wide."""
    return config.get("model", {}).get("state", "wide")
