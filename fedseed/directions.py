"""Torch kernels of the randomness spec: generate-and-apply directions over flat parameter buffers.

Two backends compute the same integers and the same floating-point operations in the same order:
``eager`` streams over fixed-size chunks with plain torch ops; ``compiled`` fuses the whole range into one
``torch.compile`` kernel with no d-sized temporaries. Every range handed to a kernel starts and ends on a
multiple of ``ALIGN`` elements (the layout pads tensors to that), so whole hash words never straddle ranges.

Fixed point: the global state is ``w = w0 + float32(delta) * 2**-DELTA_SHIFT`` with an int64 ``delta``;
updates add ``coef_int * z_int`` to ``delta``, which is exact and independent of order and device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

import torch

from fedseed import fused, many, rng_spec

ALIGN = 64
DELTA_SHIFT = 56  # |coef| <= 1 keeps coef_int * z_int below 2**59 (gaussian: 2**48 * 1107); 16x headroom
DELTA_UNIT = 2.0**-DELTA_SHIFT
EAGER_CHUNK = 1 << 20
MAX_ABS_COEF = 1.0  # a larger coefficient on a weight direction is a bug upstream, and could overflow delta
_M32 = rng_spec.M32
Tensor = torch.Tensor
BACKENDS = ("eager", "compiled")


def coef_to_int(coef: float, kind: str) -> int:
    """Quantise a real coefficient to the integer that multiplies z_int in delta units."""
    if not math.isfinite(coef) or abs(coef) > MAX_ABS_COEF:
        raise ValueError(f"coefficient {coef!r} is not finite or exceeds {MAX_ABS_COEF}")
    # coef * z = coef * Z_UNIT * z_int must equal coef_int * z_int * DELTA_UNIT
    return int(round(coef * rng_spec.Z_UNIT[kind] / DELTA_UNIT))


def int_to_coef(coef_int: int, kind: str) -> float:
    return coef_int * DELTA_UNIT / rng_spec.Z_UNIT[kind]


def exact_scale(scale: float) -> float:
    """Round a perturbation scale to 12 significant bits so scale * z is exact in fp32 (no FMA ambiguity)."""
    if scale == 0.0:
        return 0.0
    mantissa, exponent = math.frexp(scale)
    return math.ldexp(round(mantissa * 4096) / 4096, exponent)


def _mix32(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> 16)
    x = (x * rng_spec.MIX_MUL_1) & _M32
    x = x ^ (x >> 15)
    x = (x * rng_spec.MIX_MUL_2) & _M32
    return x ^ (x >> 16)


def _z_int(rows: int, start_word: torch.Tensor, key_a: torch.Tensor, key_b: torch.Tensor,
           table: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """int64 [rows, elements_per_word] block of z_int for consecutive words from start_word."""
    j = torch.arange(rows, dtype=torch.int64, device=device) + start_word
    h = _mix32(_mix32((j & _M32) ^ key_a) ^ (j >> 32) ^ key_b)
    if table is None:  # rademacher: 32 signs per word
        shifts = torch.arange(32, dtype=torch.int64, device=device)
        bits = (h[:, None] >> shifts[None, :]) & 1
        return 1 - 2 * bits
    shifts = torch.arange(2, dtype=torch.int64, device=device) * 16
    return table[(h[:, None] >> shifts[None, :]) & 0xFFFF]


def _k_perturb(w: Tensor, start_word: Tensor, key_a: Tensor, key_b: Tensor, scale: Tensor,
               table: Tensor | None) -> None:
    per = 32 if table is None else 2
    w2 = w.view(-1, per)
    z = _z_int(w2.shape[0], start_word, key_a, key_b, table, w.device).to(torch.float32)
    w2.copy_(w2 + scale * z)


def _k_accumulate(delta: Tensor, start_word: Tensor, key_a: Tensor, key_b: Tensor, coef_int: Tensor,
                  table: Tensor | None) -> None:
    per = 32 if table is None else 2
    d2 = delta.view(-1, per)
    d2.add_(coef_int * _z_int(d2.shape[0], start_word, key_a, key_b, table, delta.device))


def _k_materialize(w: Tensor, w0: Tensor, delta: Tensor) -> None:
    w.copy_(w0 + delta.to(torch.float32) * DELTA_UNIT)


def _k_project(w: Tensor, w0: Tensor, delta: Tensor, start_word: Tensor, key_a: Tensor, key_b: Tensor,
               table: Tensor | None) -> Tensor:
    per = 32 if table is None else 2
    diff = (w0 + delta.to(torch.float32) * DELTA_UNIT) - w  # the local update w_start - w_end
    z = _z_int(diff.numel() // per, start_word, key_a, key_b, table, w.device).to(torch.float64)
    return (z * diff.view(-1, per).to(torch.float64)).sum()


# the eager kernels DirectionEngine._run calls by name
_EAGER: dict[str, Callable] = {"perturb": _k_perturb, "accumulate": _k_accumulate, "project": _k_project}


@cache
def _compiled_materialize() -> Callable:
    return torch.compile(_k_materialize, dynamic=True, fullgraph=True)


def _check_range(t: torch.Tensor, start: int) -> int:
    n = t.numel()
    if start % ALIGN or n % ALIGN:
        raise ValueError(f"range [{start}, {start + n}) is not aligned to {ALIGN} elements")
    return n


class DirectionEngine:
    """Generate-and-apply over flat fp32 weights / int64 deltas, on their device, eager or compiled."""

    def __init__(self, backend: str = "compiled") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        self.backend = backend

    def _run(self, name: str, tensors: list[torch.Tensor], start: int, seed: int, kind: str,
             extra: list) -> list:
        """Call kernel `name` for one seed over [start, start + len) of the flat tensors."""
        n = _check_range(tensors[0], start)
        if self.backend == "compiled":
            return self._run_fused(name, tensors, start, seed, kind, extra)
        dev = tensors[0].device
        ka, kb = (torch.tensor(k, dtype=torch.int64, device=dev) for k in rng_spec.seed_keys(seed))
        table = None if kind == "rademacher" else fused.gauss_table(str(dev), torch.int64)
        per = rng_spec.ELEMENTS_PER_WORD[kind]
        results = []
        for lo in range(0, n, EAGER_CHUNK):
            hi = min(n, lo + EAGER_CHUNK)
            sw = torch.tensor((start + lo) // per, dtype=torch.int64, device=dev)
            chunk = [t[lo:hi] for t in tensors]
            results.append(_EAGER[name](*chunk, sw, ka, kb, *extra, table))
        return results

    @staticmethod
    def _run_fused(name: str, tensors: list[torch.Tensor], start: int, seed: int, kind: str,
                   extra: list) -> list:
        dev = tensors[0].device
        ka, kb = (fused.i32(k, dev) for k in rng_spec.seed_keys(seed))
        table = fused.gauss_table(str(dev), torch.int32) if kind == "gaussian" else None
        fn = fused.kernel(name if name == "project" else f"{name}_{kind}")
        if name == "project":
            extra = [DELTA_UNIT, table]
        elif table is not None:
            extra = [*extra, table]
        results = []
        for lo, length, sw, hi in fused.pieces(start, tensors[0].numel(), rng_spec.ELEMENTS_PER_WORD[kind]):
            chunk = [t[lo:lo + length] for t in tensors]
            results.append(fn(*chunk, fused.i32(sw, dev), fused.i32(hi, dev), ka, kb, *extra))
        return results

    def perturb(self, w: torch.Tensor, start: int, seed: int, scale: float, kind: str) -> None:
        """w += scale * z(seed) over the range (gaussian: scale rounded by `exact_scale`)."""
        rng_spec.check_kind(kind)
        # rademacher scale * z is exact as is; gaussian needs a short scale. Z_UNIT is a power of two.
        scale = scale if kind == "rademacher" else exact_scale(scale) * rng_spec.Z_UNIT[kind]
        s = torch.tensor(scale, dtype=torch.float32, device=w.device)
        self._run("perturb", [w], start, seed, kind, [s])

    def perturb_twice(self, w: torch.Tensor, start: int, seed: int, scale1: float, scale2: float,
                      kind: str) -> None:
        """w = (w + scale1 z) + scale2 z, rounded after each term exactly as two `perturb` calls round it;
        compiled gaussian does it in one pass (the zeroth-order step's restore-then-update)."""
        rng_spec.check_kind(kind)
        if self.backend == "eager" or kind == "rademacher":
            self.perturb(w, start, seed, scale1, kind)
            self.perturb(w, start, seed, scale2, kind)
            return
        s1, s2 = (torch.tensor(exact_scale(s) * rng_spec.Z_UNIT[kind], dtype=torch.float32, device=w.device)
                  for s in (scale1, scale2))
        self._run("perturb_twice", [w], start, seed, kind, [s1, s2])

    def accumulate(self, delta: torch.Tensor, start: int, seed: int, coef_int: int, kind: str) -> None:
        """delta += coef_int * z_int(seed) over the range (exact integer arithmetic)."""
        rng_spec.check_kind(kind)
        if coef_int == 0:
            return
        c = torch.tensor(int(coef_int), dtype=torch.int64, device=delta.device)
        self._run("accumulate", [delta], start, seed, kind, [c])

    def accumulate_many(self, delta: torch.Tensor, start: int, seeds: list[int], coef_ints: list[int],
                        kind: str) -> None:
        """delta += sum_k coef_k z_int(seed_k) over the range; compiled: one pass over delta for all seeds.
        The result equals that of `accumulate` seed by seed, in any order (integer sums)."""
        rng_spec.check_kind(kind)
        pairs = [(int(s), int(c)) for s, c in zip(seeds, coef_ints) if int(c) != 0]
        if self.backend == "eager" or len(pairs) < many.MIN_SEEDS:
            for s, c in pairs:
                self.accumulate(delta, start, s, c, kind)
            return
        _check_range(delta, start)
        many.accumulate(delta, start, pairs, kind)

    def materialize(self, w: torch.Tensor, w0: torch.Tensor, delta: torch.Tensor) -> None:
        """w = w0 + float32(delta) * 2**-56: the one definition of the weights of a state."""
        fn = _compiled_materialize() if self.backend == "compiled" else _k_materialize
        step = w.numel() if self.backend == "compiled" else EAGER_CHUNK
        for lo in range(0, w.numel(), step):
            fn(w[lo:lo + step], w0[lo:lo + step], delta[lo:lo + step])

    def project(self, w: torch.Tensor, w0: torch.Tensor, delta: torch.Tensor, start: int,
                seed: int, kind: str) -> float:
        """<z(seed), (w0 + delta) - w> over the range, accumulated in float64."""
        rng_spec.check_kind(kind)
        parts = self._run("project", [w, w0, delta], start, seed, kind, [])
        return float(sum(float(p) for p in parts)) * rng_spec.Z_UNIT[kind]

    def z(self, seed: int, start: int, length: int, kind: str, device: str = "cpu") -> torch.Tensor:
        """Materialised float32 z over a range (tests and small problems only)."""
        w = torch.zeros(length, dtype=torch.float32, device=device)
        self.perturb(w, start, seed, 1.0, kind)
        return w
