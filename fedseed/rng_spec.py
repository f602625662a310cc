"""The shared-randomness specification, version 1 (``fedseed-rng-v1``).

A direction is a pure function of a 63-bit seed and an element's global index in the agreed parameter
layout; every party (CPU, CUDA, any thread count or chunking) computes the same integers. This module is
the reference definition in plain Python; ``fedseed.directions`` holds the fast torch kernels, which the
tests pin against this file and against committed golden vectors.

Definition (all arithmetic on unsigned integers, ``M32 = 2**32 - 1``):

* keys: ``k = splitmix64(seed)``; ``key_a = k & M32``; ``key_b = k >> 32``.
* word hash: ``H(j) = mix32(mix32((j & M32) ^ key_a) ^ (j >> 32) ^ key_b)`` for word index ``j``, with
  ``mix32`` a xor-shift-multiply bijection on 32 bits whose multipliers are below 2**31 (so a 64-bit signed
  product never overflows on any backend).
* ``rademacher``: element ``i`` reads bit ``i % 32`` of ``H(i // 32)``; bit 0 -> +1, bit 1 -> -1.
* ``gaussian``: element ``i`` reads the 16-bit half ``i % 2`` of ``H(i // 2)`` as ``u`` and takes
  ``GAUSS_TABLE[u] / 256``, where the table holds the rounded normal quantiles at ``(u + 0.5) / 65536``.
  Integer table entries make ``coefficient * z`` exact in fixed point (see ``fedseed.state``).
"""

from __future__ import annotations

import hashlib
import statistics
from functools import lru_cache

import numpy as np

SPEC_VERSION = "fedseed-rng-v1"
M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
MIX_MUL_1 = 0x7FEB352D
MIX_MUL_2 = 0x2C1B3C6D
MAX_SEED = 2**63 - 1
GAUSS_BITS = 16
GAUSS_SCALE = 256  # z = table entry / GAUSS_SCALE
KINDS = ("rademacher", "gaussian")
# elements served by one 32-bit word hash
ELEMENTS_PER_WORD = {"rademacher": 32, "gaussian": 2}
# z = z_int * Z_UNIT; z_int is what enters fixed-point arithmetic
Z_UNIT = {"rademacher": 1.0, "gaussian": 1.0 / GAUSS_SCALE}


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown direction kind {kind!r}; expected one of {', '.join(KINDS)}")


def check_seed(seed: int) -> None:
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed {seed} outside [0, 2**63 - 1]")


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def seed_keys(seed: int) -> tuple[int, int]:
    """The two 32-bit keys of a seed."""
    check_seed(seed)
    k = splitmix64(int(seed))
    return k & M32, k >> 32


def mix32(x: int) -> int:
    x ^= x >> 16
    x = (x * MIX_MUL_1) & M32
    x ^= x >> 15
    x = (x * MIX_MUL_2) & M32
    x ^= x >> 16
    return x


def word_hash(seed: int, j: int) -> int:
    key_a, key_b = seed_keys(seed)
    return mix32(mix32((j & M32) ^ key_a) ^ (j >> 32) ^ key_b)


@lru_cache(maxsize=1)
def gauss_table() -> np.ndarray:
    """int32[65536]: round(256 * Phi^-1((u + 0.5) / 65536)); pinned by its digest in the tests."""
    nd = statistics.NormalDist()
    n = 1 << GAUSS_BITS
    values = [round(GAUSS_SCALE * nd.inv_cdf((u + 0.5) / n)) for u in range(n)]
    table = np.asarray(values, dtype=np.int32)
    table.setflags(write=False)
    return table


def gauss_table_digest() -> str:
    return hashlib.sha256(gauss_table().astype("<i4").tobytes()).hexdigest()


def second_moment(kind: str) -> float:
    """rho = E[z^2] of the kind (1 for rademacher; slightly below 1 for the discretised normal)."""
    check_kind(kind)
    if kind == "rademacher":
        return 1.0
    t = gauss_table().astype(np.float64) / GAUSS_SCALE
    return float(np.mean(t * t))


def reference_z_int(seed: int, indices: list[int], kind: str) -> list[int]:
    """The integer direction values z_int at the given global indices (slow, exact reference)."""
    check_kind(kind)
    per_word = ELEMENTS_PER_WORD[kind]
    out = []
    for i in indices:
        h = word_hash(seed, i // per_word)
        if kind == "rademacher":
            out.append(-1 if (h >> (i % 32)) & 1 else 1)
        else:
            out.append(int(gauss_table()[(h >> (16 * (i % 2))) & 0xFFFF]))
    return out


def reference_z(seed: int, indices: list[int], kind: str) -> list[float]:
    return [v * Z_UNIT[kind] for v in reference_z_int(seed, indices, kind)]
