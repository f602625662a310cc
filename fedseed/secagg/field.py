"""The quantized range of a private round. A client's vector is clipped to L2 norm ``clip`` and turned into
integers of at most ``levels`` in L2 norm (rounding toward zero, then checked exactly in integers), so clipping
holds by construction of what is sent; the sum of a round's integers (and any distributed noise) is computed
modulo 2^32 and stays far from wrapping because ``levels`` is chosen for the largest round and its noise."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedseed.robust import l2_norm

FIELD_BITS = 32
MODULUS = 1 << FIELD_BITS
HALF = MODULUS >> 1
TAIL_SIGMAS = 12.0  # headroom for the noise of a sum: a Gaussian tail this far out has probability < 1e-32


@dataclass(frozen=True)
class Quantizer:
    """clip: the L2 bound of one client's vector; levels: the integer that clip maps to."""

    clip: float
    levels: int

    @classmethod
    def for_round(cls, clip: float, max_clients: int, noise_std_levels_per_level: float = 0.0) -> Quantizer:
        """The finest levels at which max_clients vectors, plus noise of std ``noise_std_levels_per_level``
        x levels, sum without wrapping modulo 2^32."""
        if not (math.isfinite(clip) and clip > 0):
            raise ValueError(f"the clip must be a finite number > 0, got {clip}")
        if max_clients < 1:
            raise ValueError(f"a round has at least one client, got {max_clients}")
        levels = int((HALF - 1) // (max_clients + TAIL_SIGMAS * noise_std_levels_per_level))
        if levels < 1:
            raise ValueError("the round's clients and noise do not fit the 32-bit field")
        return cls(clip, levels)

    @property
    def step(self) -> float:
        return self.clip / self.levels

    def clip_vector(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("a private vector must be finite")
        norm = l2_norm(values)
        return values * (self.clip / norm) if norm > self.clip else values

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """The clipped vector as int64 of L2 norm <= levels (checked in exact integer arithmetic)."""
        q = np.trunc(self.clip_vector(values) * (self.levels / self.clip)).astype(np.int64)
        while not self.within(q):  # float rounding, at most a few units
            k = int(np.argmax(np.abs(q)))
            q[k] -= np.sign(q[k])
        return q

    def within(self, q: np.ndarray) -> bool:
        """Whether integers are within the clip: L2 norm <= levels, checked in exact integer arithmetic."""
        return sum(int(v) * int(v) for v in q) <= self.levels * self.levels

    def dequantize(self, total: np.ndarray) -> np.ndarray:
        """Signed integers (a sum of quantized vectors) back to the scale of the scalars."""
        return np.asarray(total, dtype=np.float64) * self.step


def to_field(values: np.ndarray) -> np.ndarray:
    """Signed integers as elements of Z/2^32 (uint64 holding values below 2^32)."""
    return np.mod(np.asarray(values, dtype=np.int64), MODULUS).astype(np.uint64)


def from_field(elements: np.ndarray) -> np.ndarray:
    """Elements of Z/2^32 as the signed integers in [-2^31, 2^31) they stand for."""
    e = np.mod(np.asarray(elements, dtype=np.uint64), np.uint64(MODULUS)).astype(np.int64)
    return np.where(e >= HALF, e - MODULUS, e)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.asarray(a, np.uint64) + np.asarray(b, np.uint64)) % np.uint64(MODULUS)


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.asarray(a, np.uint64) + np.uint64(MODULUS) - np.asarray(b, np.uint64)) % np.uint64(MODULUS)


def pack(elements: np.ndarray) -> bytes:
    """Little-endian uint32, the masked vector's bytes on the wire."""
    return np.asarray(elements, dtype="<u4").tobytes()


def unpack(data: bytes, length: int) -> np.ndarray:
    if len(data) != 4 * length:
        raise ValueError(f"a masked vector of {length} elements is {4 * length} bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<u4").astype(np.uint64)
