"""Kernels of the compact state: int32 fixed-point weights turned into compute weights, and updated in place.

A slot's weights are ``float32(q) * unit`` with ``unit = 2**-s``: the product is exact (a power of two, no
subnormals at the exponents the state picks), so materialising adds one rounding only where a perturbation
``scale * z`` is added, and none where none is. Rademacher ``scale * z = +-scale`` is exact too, so the eager and
compiled paths give the same bits whether or not the compiler fuses a multiply-add. Updates add
``coef * z_int`` in int32: the caller proves beforehand that no element leaves int32's range.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache

import torch

from fedseed import fused, rng_spec
from fedseed.directions import EAGER_CHUNK, _z_int

Tensor = torch.Tensor
ADD_CHUNK = 1 << 20  # elements per int64 partial sum when many seeds are added at once


def _k_plain(out: Tensor, q: Tensor, unit: Tensor) -> None:
    out.copy_((q.to(torch.float32) * unit).to(out.dtype))


def _k_perturbed(out: Tensor, q: Tensor, sw: Tensor, hi: Tensor, ka: Tensor, kb: Tensor, unit: Tensor,
                 scale: Tensor) -> None:
    o2, q2 = out.view(-1, 32), q.view(-1, 32)
    z = fused._signs(o2.shape[0], sw, hi, ka, kb).to(torch.float32)
    o2.copy_((q2.to(torch.float32) * unit + scale * z).to(out.dtype))


def _k_add(q: Tensor, sw: Tensor, hi: Tensor, ka: Tensor, kb: Tensor, coef: Tensor) -> None:
    q2 = q.view(-1, 32)
    q2.add_(coef * fused._signs(q2.shape[0], sw, hi, ka, kb))


_KERNELS: dict[str, Callable] = {"plain": _k_plain, "perturbed": _k_perturbed, "add": _k_add}


@cache
def _compiled(name: str) -> Callable:
    # one graph per output dtype (fp32, bf16, fp16) and per size class (dynamo specialises a length of one row):
    # more than dynamo's default of 8 for one function in a process that uses several dtypes
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 32)
    return torch.compile(_KERNELS[name], dynamic=True, fullgraph=True, options=fused.OPTIONS)


def _f32(value: float, device: torch.device) -> Tensor:
    return torch.tensor(value, dtype=torch.float32, device=device)


def _keys(seed: int, device: torch.device) -> tuple[Tensor, Tensor]:
    return tuple(fused.i32(k, device) for k in rng_spec.seed_keys(seed))  # type: ignore[return-value]


# Argument tensors are made per call (a few microseconds), not kept in a cache filled during the first
# forwards: small long-lived allocations made between a forward's activations pin the heap, and the freed
# activations then stay resident (+300 MiB of peak RSS on SmolLM2). Only the units, made when the state is
# built, are kept.
@lru_cache(maxsize=64)
def unit_tensor(exponent: int, device: torch.device) -> Tensor:
    return _f32(2.0**-exponent, device)


def _signs_eager(n: int, start: int, seed: int, device: torch.device) -> Tensor:
    ka, kb = (torch.tensor(k, dtype=torch.int64, device=device) for k in rng_spec.seed_keys(seed))
    sw = torch.tensor(start // 32, dtype=torch.int64, device=device)
    return _z_int(n // 32, sw, ka, kb, None, device).view(-1)


def warm_units(exponents: set[int], device: torch.device) -> None:
    """Make the units of a state's exponents now, before any forward (see `unit_tensor`)."""
    for e in exponents:
        unit_tensor(e, device)


def materialize(out: Tensor, q: Tensor, start: int, exponent: int, perturbation: tuple[int, float] | None,
                backend: str) -> None:
    """out = float32(q) * 2**-exponent (+ scale * z(seed) over global elements from `start`), in out's dtype.

    `start` and the length are multiples of 32 (slots are padded to 64)."""
    unit = unit_tensor(exponent, q.device)
    if perturbation is None:
        if backend == "compiled":
            _compiled("plain")(out, q, unit)
            return
        for lo in range(0, q.numel(), EAGER_CHUNK):
            _k_plain(out[lo:lo + EAGER_CHUNK], q[lo:lo + EAGER_CHUNK], unit)
        return
    seed, scale_value = perturbation
    scale = _f32(scale_value, q.device)  # made per call: see unit_tensor
    if backend == "compiled":
        ka, kb = _keys(seed, q.device)
        fn = _compiled("perturbed")
        for lo, length, sw, hi in fused.pieces(start, q.numel(), 32):
            fn(out[lo:lo + length], q[lo:lo + length], fused.i32(sw, q.device), fused.i32(hi, q.device), ka, kb,
               unit, scale)
        return
    for lo in range(0, q.numel(), EAGER_CHUNK):
        qc = q[lo:lo + EAGER_CHUNK]
        z = _signs_eager(qc.numel(), start + lo, seed, q.device).to(torch.float32)
        out[lo:lo + EAGER_CHUNK].copy_((qc.to(torch.float32) * unit + scale * z).to(out.dtype))


def add_one(q: Tensor, start: int, seed: int, coef: int, backend: str) -> None:
    """q += coef * z_int(seed) over the range (rademacher; |coef| < 2**31 and the result fits, checked by the
    caller)."""
    if coef == 0:
        return
    if backend == "compiled":
        ka, kb = _keys(seed, q.device)
        c = torch.tensor(coef, dtype=torch.int32, device=q.device)
        fn = _compiled("add")
        for lo, length, sw, hi in fused.pieces(start, q.numel(), 32):
            fn(q[lo:lo + length], fused.i32(sw, q.device), fused.i32(hi, q.device), ka, kb, c)
        return
    for lo in range(0, q.numel(), EAGER_CHUNK):
        qc = q[lo:lo + EAGER_CHUNK]
        qc.add_((coef * _signs_eager(qc.numel(), start + lo, seed, q.device)).to(torch.int32))


def add_many(q: Tensor, start: int, seeds: list[int], coefs: list[int], engine) -> None:
    """q += sum_k coef_k z_int(seed_k): int64 partial sums of ADD_CHUNK elements by the engine's many-seed pass,
    then one int32 add (the caller proved the sum fits)."""
    for lo in range(0, q.numel(), ADD_CHUNK):
        qc = q[lo:lo + ADD_CHUNK]
        part = torch.zeros(qc.numel(), dtype=torch.int64, device=q.device)
        engine.accumulate_many(part, start + lo, seeds, coefs, "rademacher")
        qc.add_(part.to(torch.int32))
