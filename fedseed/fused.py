"""Compiled kernels of the randomness spec: the word hash on int32 lanes, fused with the update it feeds.

The eager path in ``fedseed.directions`` computes the spec on int64 lanes with a mask after each product;
here the hash runs on int32 lanes, where a product keeps its low 32 bits by itself (two's complement wraps
modulo 2**32 in vector intrinsics and in Triton), so one AVX-512 instruction covers 16 words instead of 8.
Logical right shifts are arithmetic shifts plus a mask. A kernel's range never crosses a multiple of 2**32
words (the caller splits there), so the low half of the word index is ``arange + start`` in int32 and the high
half is one scalar. The tests pin every kernel to the eager path and the golden vectors bit for bit.
Each kernel takes a whole range of one seed in one call; ``fedseed.many`` builds the many-seed pass from the
same hash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache, lru_cache

import torch

from fedseed import rng_spec

Tensor = torch.Tensor
SPAN = 1 << 30  # elements per kernel call at most (int32 element indices; also bounds the high word half)
OPTIONS = {"assert_indirect_indexing": False}  # table indices are masked to 16 bits: never out of range


def to_i32(value: int) -> int:
    """A uint32 as the int32 with the same bits."""
    return value - (1 << 32) if value >= 1 << 31 else value


def i32(value: int, device: torch.device) -> Tensor:
    """A 0-d int32 tensor holding the bits of a uint32 (or already signed int32) value."""
    return torch.tensor(to_i32(value & rng_spec.M32), dtype=torch.int32, device=device)


@lru_cache(maxsize=16)
def gauss_table(device: str, dtype: torch.dtype) -> Tensor:
    """The spec's Gaussian table on a device, in the integer type a kernel reads."""
    return torch.from_numpy(rng_spec.gauss_table().astype("int64")).to(device=device, dtype=dtype)


def mix32(x: Tensor) -> Tensor:
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * rng_spec.MIX_MUL_1
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * rng_spec.MIX_MUL_2
    return x ^ ((x >> 16) & 0xFFFF)


def word_hash(j: Tensor, key_a: Tensor, key_b: Tensor, hi: Tensor) -> Tensor:
    return mix32(mix32(j ^ key_a) ^ hi ^ key_b)


def _signs(rows: int, sw: Tensor, hi: Tensor, key_a: Tensor, key_b: Tensor) -> Tensor:
    """int32 [rows, 32] of +-1: rademacher z for 32 * rows elements from word sw."""
    j = torch.arange(rows, dtype=torch.int32, device=sw.device) + sw
    h = word_hash(j, key_a, key_b, hi)
    shifts = torch.arange(32, dtype=torch.int32, device=sw.device)
    return 1 - 2 * ((h[:, None] >> shifts) & 1)


def _gauss_index(n: int, sw: Tensor, hi: Tensor, key_a: Tensor, key_b: Tensor) -> Tensor:
    """The 16-bit table index of each of n elements from word sw (two elements per word)."""
    i = torch.arange(n, dtype=torch.int32, device=sw.device)
    h = word_hash((i >> 1) + sw, key_a, key_b, hi)
    return (h >> ((i & 1) << 4)) & 0xFFFF


def _k_perturb_rademacher(w: Tensor, sw: Tensor, hi: Tensor, ka: Tensor, kb: Tensor, scale: Tensor) -> None:
    w2 = w.view(-1, 32)
    w2.copy_(w2 + scale * _signs(w2.shape[0], sw, hi, ka, kb).to(torch.float32))


def _k_perturb_gaussian(w: Tensor, sw: Tensor, hi: Tensor, ka: Tensor, kb: Tensor, scale: Tensor,
                        table: Tensor) -> None:
    z = table[_gauss_index(w.shape[0], sw, hi, ka, kb)].to(torch.float32)
    w.copy_(w + scale * z)


def _k_perturb_twice_gaussian(w: Tensor, sw: Tensor, hi: Tensor, ka: Tensor, kb: Tensor, s1: Tensor,
                              s2: Tensor, table: Tensor) -> None:
    z = table[_gauss_index(w.shape[0], sw, hi, ka, kb)].to(torch.float32)
    w.copy_((w + s1 * z) + s2 * z)  # two roundings, as two passes would make them


def _k_accumulate_rademacher(d: Tensor, sw: Tensor, hi: Tensor, ka: Tensor, kb: Tensor, coef: Tensor) -> None:
    d2 = d.view(-1, 32)
    d2.add_(coef * _signs(d2.shape[0], sw, hi, ka, kb).to(torch.int64))


def _k_accumulate_gaussian(d: Tensor, sw: Tensor, hi: Tensor, ka: Tensor, kb: Tensor, coef: Tensor,
                           table: Tensor) -> None:
    d.add_(coef * table[_gauss_index(d.shape[0], sw, hi, ka, kb)].to(torch.int64))


def _z_float64(n: int, sw: Tensor, hi: Tensor, ka: Tensor, kb: Tensor, table: Tensor | None) -> Tensor:
    if table is None:
        return _signs(n // 32, sw, hi, ka, kb).view(-1).to(torch.float64)
    return table[_gauss_index(n, sw, hi, ka, kb)].to(torch.float64)


def _k_project(w: Tensor, w0: Tensor, d: Tensor, sw: Tensor, hi: Tensor, ka: Tensor, kb: Tensor, unit: float,
               table: Tensor | None) -> Tensor:
    diff = (w0 + d.to(torch.float32) * unit) - w  # the local update w_start - w_end
    return (_z_float64(w.shape[0], sw, hi, ka, kb, table) * diff.to(torch.float64)).sum()


KERNELS: dict[str, Callable] = {
    "perturb_rademacher": _k_perturb_rademacher,
    "perturb_gaussian": _k_perturb_gaussian,
    "perturb_twice_gaussian": _k_perturb_twice_gaussian,
    "accumulate_rademacher": _k_accumulate_rademacher,
    "accumulate_gaussian": _k_accumulate_gaussian,
    "project": _k_project,
}


@cache
def kernel(name: str) -> Callable:
    """The compiled single-seed kernel `name` (any range length: shapes are dynamic)."""
    return torch.compile(KERNELS[name], dynamic=True, fullgraph=True, options=OPTIONS)


def pieces(start: int, n: int, per_word: int) -> Iterator[tuple[int, int, int, int]]:
    """Split [start, start + n) where the word index's high half changes or SPAN elements pass:
    yields (offset in the range, length, low word as int32, high word as int32)."""
    lo = 0
    while lo < n:
        word = (start + lo) // per_word
        to_boundary = ((word >> 32) + 1 << 32) - word
        length = min(n - lo, SPAN, to_boundary * per_word)
        yield lo, length, to_i32(word & rng_spec.M32), to_i32(word >> 32)
        lo += length
