"""The compact state: the trainable weights held only as int32 fixed point, streamed into the forward.

Each layout slot keeps its weights as ``q`` (int32) in units of ``2**-s``, with ``s`` picked from the base
tensor's largest magnitude so the base uses at most 2**29 of int32's 2**31 (room to grow 4x) and ``s <= 30``.
The weights the model computes with are ``float32(q) * 2**-s``, turned into the compute dtype one module at a
time by a forward pre-hook into one reusable scratch buffer, with the active perturbation ``scale * z`` added in
the same pass. A zeroth-order client so holds 4 bytes per trainable weight, where inference holds the weights
themselves, instead of the wide state's 16 (fp32 weights + fp32 base + int64 delta).

Exactness is kept with integers: a coefficient (in the wide state's 2**-56 units) is rounded once per exponent
class, symmetrically about zero, and ``q += c_s * z_int`` is exact, independent of order and device, linear in
the rounded coefficients (catch-up from merged coefficients equals round-by-round application) and undone
exactly by the negated coefficient (local steps are journaled and subtracted; nothing is copied). Rademacher
directions only: a Gaussian z_int carries 8 fractional bits that int32 has no room for.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from fedseed import compact_kernels as ck
from fedseed.directions import DELTA_SHIFT, DirectionEngine, coef_to_int
from fedseed.layout import Layout

if TYPE_CHECKING:
    from fedseed.strategies.base import GlobalUpdate

HEADROOM_BITS = 29  # the base's largest |q| is below 2**29
MAX_EXPONENT = 30  # a zero or tiny tensor still has 2**31 * 2**-30 = 2.0 of range
Q_LIMIT = 2**31 - 1
CONVERT_CHUNK = 1 << 20


def exponent_for(max_abs: float) -> int:
    """The unit exponent s of a slot whose base weights reach max_abs: max_abs * 2**s < 2**HEADROOM_BITS."""
    if max_abs == 0.0:
        return MAX_EXPONENT
    return min(MAX_EXPONENT, HEADROOM_BITS - math.frexp(max_abs)[1])


def round_coef(coef_int: int, exponent: int) -> int:
    """A coefficient in 2**-56 units rounded to 2**-exponent units, half away from zero (so negation commutes)."""
    shift = DELTA_SHIFT - exponent
    mag = (abs(coef_int) + (1 << (shift - 1))) >> shift
    return -mag if coef_int < 0 else mag


@dataclass(frozen=True)
class Segment:
    """Adjacent slots that share an exponent: one kernel call covers them."""

    lo: int
    hi: int
    exponent: int


class CompactState:
    """The trainable weights as int32 fixed point, streamed module by module into a zeroth-order forward."""

    format = "compact"

    def __init__(self, model: torch.nn.Module, layout: Layout, engine: DirectionEngine,
                 compute_dtype: torch.dtype = torch.float32) -> None:
        params = dict(model.named_parameters())
        self.model, self.layout, self.engine, self.compute_dtype = model, layout, engine, compute_dtype
        device = next(iter(params.values())).device
        self.q = torch.zeros(layout.size, dtype=torch.int32, device=device)
        self.exponents: list[int] = []
        self.base_rounded = 0  # base weights not representable exactly (rounded to the slot's unit)
        for slot in layout.slots:
            p = params[slot.name]
            s = exponent_for(float(p.detach().abs().max()) if p.numel() else 0.0)
            self.exponents.append(s)
            self._convert(p.detach().reshape(-1), slot.offset, s)
        self.segments = self._segments()
        self.bounds = {s: self._exact_max(s) for s in set(self.exponents)}  # an upper bound of |q| per class
        self.perturbation: tuple[int, float] | None = None
        self.journal: list[tuple[int, int]] = []  # local steps (seed, coef_int), undone by restore()
        self._saved_bounds: dict[int, int] | None = None
        self._streamer = _Streamer(self, params)

    @property
    def device(self) -> torch.device:
        return self.q.device

    def _convert(self, values: torch.Tensor, offset: int, exponent: int) -> None:
        for lo in range(0, values.numel(), CONVERT_CHUNK):
            v = values[lo:lo + CONVERT_CHUNK].to(torch.float64) * 2.0**exponent  # exact: a power of two
            r = torch.round(v)
            self.base_rounded += int((r != v).sum())
            self.q[offset + lo:offset + lo + r.numel()] = r.to(torch.int32)

    def _segments(self) -> list[Segment]:
        out: list[Segment] = []
        for slot, s in zip(self.layout.slots, self.exponents):
            lo, hi = slot.offset, slot.offset + slot.padded
            if out and out[-1].exponent == s and out[-1].hi == lo:
                out[-1] = Segment(out[-1].lo, hi, s)
            else:
                out.append(Segment(lo, hi, s))
        return out

    def _exact_max(self, exponent: int) -> int:
        return max((int(self.q[g.lo:g.hi].abs().max()) for g in self.segments if g.exponent == exponent),
                   default=0)

    def _make_room(self, growth: dict[int, int]) -> bool:
        """True when every class can grow by `growth` without leaving int32 (re-measuring a class whose running
        bound says no); the bounds then include the growth."""
        for s, g in growth.items():
            if self.bounds[s] + g > Q_LIMIT:
                self.bounds[s] = self._exact_max(s)
                if self.bounds[s] + g > Q_LIMIT:
                    return False
        for s, g in growth.items():
            self.bounds[s] += g
        return True

    # --- local work -----------------------------------------------------------------------------------
    def perturb(self, seed: int, scale: float, kind: str) -> None:
        """The computed weights move by scale * z(seed); q is untouched (one direction at a time)."""
        _check_kind(kind)
        if self.perturbation is not None and self.perturbation[0] != seed:
            raise ValueError("the compact state holds one perturbation direction at a time")
        total = scale + (self.perturbation[1] if self.perturbation else 0.0)
        self.perturbation = None if total == 0.0 else (seed, total)

    def step(self, seed: int, coef: float, kind: str) -> bool:
        """Local step q += coef z(seed), journaled; False (nothing changed) if it would leave int32's range."""
        _check_kind(kind)
        c = coef_to_int(coef, kind)
        per_class = {s: round_coef(c, s) for s in self.bounds}
        if self._saved_bounds is None:
            self._saved_bounds = dict(self.bounds)
        if not self._make_room({s: abs(v) for s, v in per_class.items()}):
            return False
        self._add_seed(seed, per_class)
        self.journal.append((seed, c))
        return True

    def _add_seed(self, seed: int, per_class: dict[int, int]) -> None:
        for g in self.segments:
            ck.add_one(self.q[g.lo:g.hi], g.lo, seed, per_class[g.exponent], self.engine.backend)

    def restore(self) -> None:
        """Discard local work exactly: subtract the journaled steps, drop the perturbation."""
        for seed, c in reversed(self.journal):
            self._add_seed(seed, {s: -round_coef(c, s) for s in self.bounds})
        self.journal.clear()
        self.perturbation = None
        if self._saved_bounds is not None:
            self.bounds, self._saved_bounds = self._saved_bounds, None

    # --- global updates -------------------------------------------------------------------------------
    def apply_seeds(self, seeds: np.ndarray, coef_ints: np.ndarray, kind: str,
                    starts: np.ndarray | None = None, stops: np.ndarray | None = None) -> None:
        """q += sum_k round_s(coef_k) z(seed_k) (on [start_k, stop_k) when given), local work discarded first.
        Raises ValueError, state unchanged, if some weight could leave int32's range."""
        _check_kind(kind)
        work: dict[tuple[int, int, int], dict[int, int]] = {}
        for k, (seed, c) in enumerate(zip(seeds.tolist(), coef_ints.tolist())):
            per_class = work.setdefault(self._key(seed, k, starts, stops), {})
            for s in self.bounds:
                per_class[s] = per_class.get(s, 0) + round_coef(int(c), s)
        self._apply(work)

    def apply_rounds(self, updates: list[GlobalUpdate]) -> None:
        """Many rounds' seed updates in one pass, bit-identical to applying them one by one: the rounded
        coefficients of each (seed, range) are summed per exponent class (summing first would round
        differently)."""
        work: dict[tuple[int, int, int], dict[int, int]] = {}
        for u in updates:
            _check_kind(u.kind)
            for k, (seed, c) in enumerate(zip(u.seeds.tolist(), u.coef_ints().tolist())):
                per_class = work.setdefault(self._key(seed, k, u.starts, u.stops), {})
                for s in self.bounds:
                    per_class[s] = per_class.get(s, 0) + round_coef(int(c), s)
        self._apply(work)

    def _key(self, seed: int, k: int, starts: np.ndarray | None, stops: np.ndarray | None) -> tuple[int, int, int]:
        lo = 0 if starts is None else int(starts[k])
        hi = self.layout.size if stops is None else int(stops[k])
        return int(seed), lo, hi

    def _apply(self, work: dict[tuple[int, int, int], dict[int, int]]) -> None:
        self.restore()
        hits = [(g, key, a, b) for g in self.segments for key in work
                if (a := max(key[1], g.lo)) < (b := min(key[2], g.hi))]
        growth: dict[int, int] = {}
        for g, key, _, _ in hits:
            growth[g.exponent] = growth.get(g.exponent, 0) + abs(work[key][g.exponent])
        if not self._make_room(growth):
            raise ValueError("update would take a weight past the compact state's int32 range: "
                             "coefficients are far too large")
        by_range: dict[tuple[int, int, int], tuple[list[int], list[int]]] = {}
        for g, key, a, b in hits:  # one many-seed pass per (range piece, class)
            seeds, coefs = by_range.setdefault((a, b, g.exponent), ([], []))
            seeds.append(key[0])
            coefs.append(work[key][g.exponent])
        for (a, b, _), (seeds, coefs) in by_range.items():
            ck.add_many(self.q[a:b], a, seeds, coefs, self.engine)

    def apply_dense(self, update: torch.Tensor) -> None:
        self.restore()
        self.add_dense(update)

    def add_dense(self, update: torch.Tensor) -> None:
        """q += round(update * 2**s) elementwise (round half to even, symmetric about zero)."""
        parts, growth = [], {}
        for g in self.segments:
            ints = torch.round(update[g.lo:g.hi].to(torch.float64) * 2.0**g.exponent)
            top = int(ints.abs().max()) if ints.numel() else 0
            growth[g.exponent] = max(growth.get(g.exponent, 0), top)
            parts.append(ints)
        if any(v > Q_LIMIT for v in growth.values()) or not self._make_room(growth):
            raise ValueError("dense update would take a weight past the compact state's int32 range")
        for g, ints in zip(self.segments, parts):
            self.q[g.lo:g.hi] += ints.to(torch.int32).to(self.device)

    # --- what the parties compare and export ----------------------------------------------------------
    def checksum(self) -> str:
        """blake2b of q and the exponents: the global state every party must agree on."""
        h = hashlib.blake2b(digest_size=16)
        h.update(np.asarray(self.exponents, np.int8).tobytes())
        h.update(self.q.detach().to("cpu").numpy().tobytes())
        return h.hexdigest()

    def weights(self, lo: int, hi: int, perturbation: tuple[int, float] | None = None,
                out: torch.Tensor | None = None) -> torch.Tensor:
        """The computed weights over an aligned range inside one slot or segment-aligned span."""
        out = torch.empty(hi - lo, dtype=self.compute_dtype, device=self.device) if out is None else out
        for g in self.segments:
            a, b = max(lo, g.lo), min(hi, g.hi)
            if a < b:
                ck.materialize(out[a - lo:b - lo], self.q[a:b], a, g.exponent, perturbation, self.engine.backend)
        return out

    @contextlib.contextmanager
    def resident(self) -> Iterator[None]:
        """Every trainable parameter holds its computed weights for the duration (export, generation)."""
        with self._streamer.paused():
            yield

    def smallest_update(self) -> dict[str, float]:
        """Per slot: the smallest change a weight can receive (its unit), for the precision report."""
        return {slot.name: 2.0**-s for slot, s in zip(self.layout.slots, self.exponents)}


def _check_kind(kind: str) -> None:
    if kind != "rademacher":
        raise ValueError(f"the compact state takes rademacher directions only, not {kind!r} "
                         "(set model.state = \"wide\" for gaussian directions)")


class _Streamer:
    """Forward hooks that give each module owning trainable parameters its computed weights for one call."""

    def __init__(self, state: CompactState, params: dict[str, torch.nn.Parameter]) -> None:
        self.state = state
        slot_of = {id(params[s.name]): (i, s) for i, s in enumerate(state.layout.slots)}
        self.owners: dict[torch.nn.Module, list[tuple[torch.nn.Parameter, int]]] = {}
        for module in state.model.modules():
            own = [(p, slot_of[id(p)][0]) for p in module.parameters(recurse=False) if id(p) in slot_of]
            if own:
                self.owners[module] = own
        for module in self.owners:
            for child in module.modules():
                if child is not module and child in self.owners:
                    raise ValueError("a module owning trainable weights contains another: the compact state "
                                     "streams one module at a time (use model.state = \"wide\")")
        size = max(sum(state.layout.slots[i].padded for _, i in own) for own in self.owners.values())
        self.scratch = torch.empty(size, dtype=state.compute_dtype, device=state.device)
        self.placeholders = {id(p): torch.full((), math.nan, dtype=state.compute_dtype,
                                               device=state.device).expand(p.shape)
                             for own in self.owners.values() for p, _ in own}
        self.handles: list = []
        self._release_all()
        self._install()

    def _install(self) -> None:
        for module in self.owners:
            self.handles.append(module.register_forward_pre_hook(self._fill))
            self.handles.append(module.register_forward_hook(self._release))

    def _fill(self, module: torch.nn.Module, args: tuple) -> None:
        if torch.is_grad_enabled():
            raise RuntimeError("the compact state streams weights for forwards without autograd only "
                               "(run under torch.no_grad or torch.inference_mode)")
        cursor = 0
        for p, i in self.owners[module]:
            slot = self.state.layout.slots[i]
            buf = self.scratch[cursor:cursor + slot.padded]
            self.state.weights(slot.offset, slot.offset + slot.padded, self.state.perturbation, buf)
            p.data = buf[:slot.numel].view(slot.shape)
            cursor += slot.padded

    def _release(self, module: torch.nn.Module, args: tuple, output: object) -> None:
        for p, _ in self.owners[module]:
            p.data = self.placeholders[id(p)]

    def _release_all(self) -> None:
        for own in self.owners.values():
            for p, _ in own:
                p.data = self.placeholders[id(p)]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        held = []
        try:
            for own in self.owners.values():
                for p, i in own:
                    slot = self.state.layout.slots[i]
                    w = self.state.weights(slot.offset, slot.offset + slot.padded)
                    p.data = w[:slot.numel].view(slot.shape)
                    held.append(w)
            yield
        finally:
            self._release_all()
            self._install()
