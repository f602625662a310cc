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

import bisect
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
from fedseed.streaming import CHUNK_ELEMENTS, Streamer, placeholder

if TYPE_CHECKING:
    from fedseed.strategies.base import GlobalUpdate

HEADROOM_BITS = 29  # the base's largest |q| is below 2**29
MAX_EXPONENT = 30  # a zero or tiny tensor still has 2**31 * 2**-30 = 2.0 of range
Q_LIMIT = 2**31 - 1
CONVERT_CHUNK = 1 << 20
# what a coordinator without the model lets the run's coefficients sum to, in 2**-56 units: every class can grow
# by (2**31 - 2**29) * 2**-30 = 1.5 at least; 1.4 leaves the class rounding (half a unit per seed) room too
LOG_ONLY_ROOM = int(1.4 * 2**56)


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
                 compute_dtype: torch.dtype = torch.float32, chunk_elements: int = CHUNK_ELEMENTS,
                 keep_frozen: bool = False) -> None:
        """The trainable weights materialise in compute_dtype; the other floating parameters are cast to it,
        or with keep_frozen stay as loaded (forwards under autocast take mixed dtypes)."""
        params = dict(model.named_parameters())
        self.model, self.layout, self.engine, self.compute_dtype = model, layout, engine, compute_dtype
        device = next(iter(params.values())).device
        # empty, not zeros: pages are touched slot by slot as the base copy is freed, so loading never holds both
        self.q = torch.empty(layout.size, dtype=torch.int32, device=device)
        self.exponents: list[int] = []
        self.base_rounded = 0  # base weights not representable exactly (rounded to the slot's unit)
        # one set of conversion buffers for every slot: no temporaries the size of a tensor, and no churn of
        # freed chunks for the allocator to keep (they would stay in the process's RSS)
        buffers = (torch.empty(CONVERT_CHUNK, dtype=torch.float64, device=device),
                   torch.empty(CONVERT_CHUNK, dtype=torch.float64, device=device),
                   torch.empty(CONVERT_CHUNK, dtype=torch.bool, device=device))
        for slot in layout.slots:
            p = params[slot.name]
            values = p.detach().reshape(-1)
            s = exponent_for(_max_abs(values))
            self.exponents.append(s)
            self._convert(values, slot.offset, s, buffers)
            self.q[slot.offset + slot.numel:slot.offset + slot.padded] = 0
            p.data = placeholder(slot.shape, compute_dtype, device)  # the base copy goes now: peak = model + q
        trainable = {slot.name for slot in layout.slots}
        for name, p in params.items():  # buffers stay as the model made them (rotary frequencies: fp32)
            if not keep_frozen and name not in trainable and p.is_floating_point() and p.dtype != compute_dtype:
                p.data = p.data.to(compute_dtype)
        self.segments = self._segments()
        ck.warm_units(set(self.exponents), device)
        self._segment_starts = [g.lo for g in self.segments]
        self.bounds = {s: self._exact_max(s) for s in set(self.exponents)}  # an upper bound of |q| per class
        self.perturbation: tuple[int, float] | None = None
        self.journal: list[tuple[int, int]] = []  # local steps (seed, coef_int), undone by restore()
        self._saved_bounds: dict[int, int] | None = None
        self._streamer = Streamer(self, params, chunk_elements)

    @property
    def device(self) -> torch.device:
        return self.q.device

    def _convert(self, values: torch.Tensor, offset: int, exponent: int, buffers: tuple[torch.Tensor, ...]) -> None:
        scaled, rounded, differs = buffers
        for lo in range(0, values.numel(), CONVERT_CHUNK):
            chunk = values[lo:lo + CONVERT_CHUNK]
            n = chunk.numel()
            v, r, d = scaled[:n], rounded[:n], differs[:n]
            v.copy_(chunk).mul_(2.0**exponent)  # exact: a power of two
            torch.round(v, out=r)
            torch.ne(r, v, out=d)
            self.base_rounded += int(d.sum())
            self.q[offset + lo:offset + lo + n].copy_(r)

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
        return max((_max_abs(self.q[g.lo:g.hi]) for g in self.segments if g.exponent == exponent), default=0)

    def _make_room(self, growth: dict[int, int], commit: bool = True) -> bool:
        """True when every class can grow by `growth` without leaving int32 (re-measuring a class whose running
        bound says no); with commit, the bounds then include the growth."""
        for s, g in growth.items():
            if self.bounds[s] + g > Q_LIMIT:
                self.bounds[s] = self._exact_max(s)
                if self.bounds[s] + g > Q_LIMIT:
                    return False
        if commit:
            for s, g in growth.items():
                self.bounds[s] += g
        return True

    def room(self) -> dict[int, int]:
        return dict(self.bounds)

    def set_room(self, room: dict[int, int]) -> None:
        self.bounds = dict(room)

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
        try:
            c = coef_to_int(coef, kind)
        except ValueError:  # not finite, or beyond any sane step
            return False
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

    def unperturb_and_step(self, seed: int, eps: float, coef: float, kind: str) -> bool:
        """From the -eps z perturbation back to none, then the local step coef z (False: it could not fit)."""
        self.perturb(seed, eps, kind)
        return self.step(seed, coef, kind) if coef else True

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
        self._apply(self._work([(seeds, coef_ints, starts, stops)]))

    def apply_rounds(self, updates: list[GlobalUpdate]) -> None:
        """Many rounds' seed updates in one pass, bit-identical to applying them one by one: the rounded
        coefficients of each (seed, range) are summed per exponent class (summing first would round
        differently)."""
        for u in updates:
            _check_kind(u.kind)
        self._apply(self._work(updates))

    def _work(self, parts: list) -> dict[tuple[int, int, int], dict[int, int]]:
        """(seed, lo, hi) -> exponent -> the sum of the class-rounded coefficients; parts are updates or
        (seeds, coef_ints, starts, stops) tuples."""
        work: dict[tuple[int, int, int], dict[int, int]] = {}
        for part in parts:
            seeds, coefs, starts, stops = ((part.seeds, part.coef_ints(), part.starts, part.stops)
                                           if hasattr(part, "coef_ints") else part)
            for k, (seed, c) in enumerate(zip(seeds.tolist(), coefs.tolist())):
                per_class = work.setdefault(self._key(seed, k, starts, stops), {})
                for s in self.bounds:
                    per_class[s] = per_class.get(s, 0) + round_coef(int(c), s)
        return work

    def _key(self, seed: int, k: int, starts: np.ndarray | None, stops: np.ndarray | None) -> tuple[int, int, int]:
        lo = 0 if starts is None else int(starts[k])
        hi = self.layout.size if stops is None else int(stops[k])
        return int(seed), lo, hi

    def has_room(self, update: GlobalUpdate) -> bool:
        """Whether the update fits int32 on every weight (what the coordinator checks before recording it)."""
        if update.dense is not None or update.kind != "rademacher":
            return True  # refused with its own message when applied
        work = self._work([update])
        return self._make_room(self._growth(work, self._hits(work)), commit=False)

    def _hits(self, work: dict) -> list[tuple[Segment, tuple[int, int, int], int, int]]:
        return [(g, key, a, b) for g in self.segments for key in work
                if (a := max(key[1], g.lo)) < (b := min(key[2], g.hi))]

    @staticmethod
    def _growth(work: dict, hits: list) -> dict[int, int]:
        growth: dict[int, int] = {}
        for exponent, key in {(g.exponent, key) for g, key, _, _ in hits}:  # a weight is in one segment only
            growth[exponent] = growth.get(exponent, 0) + abs(work[key][exponent])
        return growth

    def _apply(self, work: dict[tuple[int, int, int], dict[int, int]]) -> None:
        self.restore()
        hits = self._hits(work)
        if not self._make_room(self._growth(work, hits)):
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
        for g in self.segments[bisect.bisect_right(self._segment_starts, lo) - 1:]:
            if g.lo >= hi:
                break
            a, b = max(lo, g.lo), min(hi, g.hi)
            ck.materialize(out[a - lo:b - lo], self.q[a:b], a, g.exponent, perturbation, self.engine.backend)
        return out

    @contextlib.contextmanager
    def resident(self) -> Iterator[None]:
        """Every trainable parameter holds its computed weights for the duration (export, generation)."""
        with self._streamer.paused():
            yield


def _max_abs(t: torch.Tensor) -> float | int:
    """max |t| without a temporary the size of t."""
    if not t.numel():
        return 0
    lo, hi = torch.aminmax(t)
    return max(-lo.item(), hi.item())


def _check_kind(kind: str) -> None:
    if kind != "rademacher":
        raise ValueError(f"the compact state takes rademacher directions only, not {kind!r} "
                         "(set model.state = \"wide\" for gaussian directions)")
