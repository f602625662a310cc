"""Many seeds per pass: delta += sum_k c_k z_int(seed_k) reading and writing each chunk of delta once.

Applying n seeds one pass at a time moves the int64 delta through memory n times; here the range is cut into
chunks (8,192 elements for 1,024 Rademacher seeds, longer for fewer seeds) and, per chunk, one kernel hashes
every word for every seed into an int32 [n, words] buffer (one hash per word and seed, as the spec defines),
and a second reduces over the seeds for every element in exact int64 arithmetic. Integer sums make the
result equal to the seed-by-seed one whatever the order.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch

from fedseed import fused, rng_spec

Tensor = torch.Tensor
# words per chunk: least, most, and the budget of words x seeds (Rademacher's keeps the hashes near 1 MiB;
# Gaussian's per-element table reads cost more than the hash buffer's cache misses)
CHUNK_WORDS = {"rademacher": (256, 8192, 1 << 18), "gaussian": (4096, 131072, 1 << 22)}
SEED_VECTOR = 16  # seeds per int32 vector on AVX-512
MIN_SEEDS = 16  # below this, one pass per seed is as fast (measured on SmolLM2's size: 12 seeds 1.1x, 16 1.4x)


def chunk_words(kind: str, n: int) -> int:
    """Words per chunk for n seeds: few seeds get long chunks, so the per-call cost of a kernel never
    dominates; many seeds get short ones, so the [n, words] hash buffer stays in cache."""
    least, most, budget = CHUNK_WORDS[kind]
    return max(least, min(most, budget // n))


def _k_word_hashes(rows: int, sw: Tensor, hi: Tensor, ka: Tensor, kb: Tensor) -> Tensor:
    """int32 [n, rows]: the hash of each of rows words for each of n seeds. Seed-major, so the Rademacher
    reduction is vectorised along the words and needs no horizontal sum per element."""
    j = torch.arange(rows, dtype=torch.int32, device=sw.device) + sw
    return fused.word_hash(j[None, :], ka[:, None], kb[:, None], hi)


def _k_word_hashes_by_word(rows: int, sw: Tensor, hi: Tensor, ka: Tensor, kb: Tensor) -> Tensor:
    """int32 [rows, n]: word-major, which suits the Gaussian reduction (its table reads are the cost)."""
    j = torch.arange(rows, dtype=torch.int32, device=sw.device) + sw
    return fused.word_hash(j[:, None], ka[None, :], kb[None, :], hi)


def _k_rademacher(d: Tensor, h: Tensor, twice: Tensor, total: Tensor) -> None:
    """sum_k c_k (1 - 2 bit_k) = sum_k c_k - sum_k (2 c_k if bit_k): a shift pair turns bit b into an
    all-ones mask, which selects 2 c_k with one AND (fewer vector operations than a compare and blend)."""
    d2 = d.view(-1, 32)
    to_top = 31 - torch.arange(32, dtype=torch.int32, device=d.device)
    mask = (h[:, :, None] << to_top[None, None, :]) >> 31  # [n, words, 32]: 0 or -1, bit b of each word
    d2.add_(total - (mask.to(torch.int64) & twice[:, None, None]).sum(dim=0))


def _k_gaussian(d: Tensor, h: Tensor, coefs: Tensor, table: Tensor) -> None:
    d2 = d.view(-1, 2)
    shifts = torch.tensor([0, 16], dtype=torch.int32, device=d.device)
    z = table[(h[:, None, :] >> shifts[None, :, None]) & 0xFFFF].to(torch.int64)  # [words, 2, n]
    d2.add_((z * coefs[None, None, :]).sum(dim=2))


_KERNELS: dict[str, Callable] = {
    "word_hashes": _k_word_hashes,
    "word_hashes_by_word": _k_word_hashes_by_word,
    "rademacher": _k_rademacher,
    "gaussian": _k_gaussian,
}


@cache
def _kernel(name: str) -> Callable:
    return torch.compile(_KERNELS[name], dynamic=True, fullgraph=True, options=fused.OPTIONS)


def accumulate(delta: Tensor, start: int, pairs: list[tuple[int, int]], kind: str) -> None:
    """delta (an aligned range from global element `start`) += sum of coef * z_int(seed) over `pairs`."""
    dev = delta.device
    # pad to whole vectors of seeds: a zero coefficient adds nothing, and the kernels then never take their
    # masked remainder path (slow when n is small, as in a round of a few clients)
    pairs = pairs + [(0, 0)] * (-len(pairs) % SEED_VECTOR)
    keys = [rng_spec.seed_keys(s) for s, _ in pairs]
    ka = torch.tensor([fused.to_i32(a) for a, _ in keys], dtype=torch.int32, device=dev)
    kb = torch.tensor([fused.to_i32(b) for _, b in keys], dtype=torch.int32, device=dev)
    coefs = torch.tensor([c for _, c in pairs], dtype=torch.int64, device=dev)
    if kind == "gaussian":
        operands = [coefs, fused.gauss_table(str(dev), torch.int32)]
    else:  # int64 sums wrap, and the true result fits: exact modulo 2**64 like every other delta update
        operands = [2 * coefs, coefs.sum()]
    per = rng_spec.ELEMENTS_PER_WORD[kind]
    rows = chunk_words(kind, len(pairs))
    hashes = _kernel("word_hashes" if kind == "rademacher" else "word_hashes_by_word")
    reduce = _kernel(kind)
    for lo, length, sw, hi in fused.pieces(start, delta.numel(), per):
        words = length // per
        hi_t = fused.i32(hi, dev)
        for w in range(0, words, rows):
            r = min(rows, words - w)
            h = hashes(r, fused.i32(sw + w, dev), hi_t, ka, kb)
            reduce(delta[lo + w * per:lo + (w + r) * per], h, *operands)
