"""Many seeds per pass: delta += sum_k c_k z_int(seed_k) reading and writing each chunk of delta once.

Applying n seeds one pass at a time moves the int64 delta through memory n times; here the range is cut into
chunks of 8,192 elements (64 KiB of delta, resident in cache) and, per chunk, one kernel hashes every word for
every seed into an int32 [words, n] buffer (one hash per word and seed, as the spec defines), and a second
reduces over the seeds for every element in exact int64 arithmetic. Integer sums make the result equal to
the seed-by-seed one whatever the order. Chunks of the standard size run a kernel compiled for that size
(tighter loops than a shape-generic one); the seed count and the last partial chunk stay dynamic.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache

import torch

from fedseed import fused, rng_spec

Tensor = torch.Tensor
CHUNK_WORDS = {"rademacher": 256, "gaussian": 4096}  # 8,192 elements of delta per chunk for either kind


def _k_word_hashes(rows: int, sw: Tensor, hi: Tensor, ka: Tensor, kb: Tensor) -> Tensor:
    """int32 [rows, n]: the hash of each of rows words for each of n seeds."""
    j = torch.arange(rows, dtype=torch.int32, device=sw.device) + sw
    return fused.word_hash(j[:, None], ka[None, :], kb[None, :], hi)


def _k_rademacher(d: Tensor, h: Tensor, twice: Tensor, total: Tensor) -> None:
    """sum_k c_k (1 - 2 bit_k) = sum_k c_k - sum_k (2 c_k if bit_k): a shift pair turns bit b into an
    all-ones mask, which selects 2 c_k with one AND (fewer vector operations than a compare and blend)."""
    d2 = d.view(-1, 32)
    to_top = 31 - torch.arange(32, dtype=torch.int32, device=d.device)
    mask = (h[:, None, :] << to_top[None, :, None]) >> 31  # 0 or -1: bit b of each seed's word
    d2.add_(total - (mask.to(torch.int64) & twice[None, None, :]).sum(dim=2))


def _k_gaussian(d: Tensor, h: Tensor, coefs: Tensor, table: Tensor) -> None:
    d2 = d.view(-1, 2)
    shifts = torch.tensor([0, 16], dtype=torch.int32, device=d.device)
    z = table[(h[:, None, :] >> shifts[None, :, None]) & 0xFFFF].to(torch.int64)
    d2.add_((z * coefs[None, None, :]).sum(dim=2))


def _k_rademacher_tail(d: Tensor, h: Tensor, twice: Tensor, total: Tensor) -> None:
    _k_rademacher(d, h, twice, total)  # its own code object, so its compiled variants stay apart from the main one


def _k_gaussian_tail(d: Tensor, h: Tensor, coefs: Tensor, table: Tensor) -> None:
    _k_gaussian(d, h, coefs, table)


@cache
def _kernel(name: str) -> Callable:
    dynamic = True if name.endswith("tail") or name == "word_hashes" else None
    return torch.compile(globals()[f"_k_{name}"], dynamic=dynamic, fullgraph=True, options=fused.OPTIONS)


@lru_cache(maxsize=8)
def _table(device: str) -> Tensor:
    return torch.from_numpy(rng_spec.gauss_table().astype("int32")).to(device)


def accumulate(delta: Tensor, start: int, pairs: list[tuple[int, int]], kind: str) -> None:
    """delta (an aligned range from global element `start`) += sum of coef * z_int(seed) over `pairs`,
    at least two of them, all coefficients nonzero."""
    dev = delta.device
    keys = [rng_spec.seed_keys(s) for s, _ in pairs]
    ka = torch.tensor([fused.to_i32(a) for a, _ in keys], dtype=torch.int32, device=dev)
    kb = torch.tensor([fused.to_i32(b) for _, b in keys], dtype=torch.int32, device=dev)
    coefs = torch.tensor([c for _, c in pairs], dtype=torch.int64, device=dev)
    if kind == "gaussian":
        operands = [coefs, _table(str(dev))]
    else:  # int64 sums wrap, and the true result fits: exact modulo 2**64 like every other delta update
        operands = [2 * coefs, coefs.sum()]
    for t in (ka, kb, operands[0]):
        torch._dynamo.mark_dynamic(t, 0)  # one compiled kernel for every seed count
    per = rng_spec.ELEMENTS_PER_WORD[kind]
    rows = CHUNK_WORDS[kind]
    hashes = _kernel("word_hashes")
    for lo, length, sw, hi in fused.pieces(start, delta.numel(), per):
        words = length // per
        hi_t = torch.tensor(hi, dtype=torch.int32, device=dev)
        for w in range(0, words, rows):
            r = min(rows, words - w)
            sw_t = torch.tensor(fused.to_i32((sw + w) & rng_spec.M32), dtype=torch.int32, device=dev)
            h = hashes(r, sw_t, hi_t, ka, kb)
            body = _kernel(kind if r == rows else f"{kind}_tail")
            body(delta[lo + w * per:lo + (w + r) * per], h, *operands)
