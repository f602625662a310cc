"""Scalar codecs for the wire: fp32, fp16 and a one-byte log-scale code.

One-byte code (``onebyte``): byte = sign bit (0x80) | k, k in 0..127. k = 0 is zero; otherwise
|g| = G_MIN * R**(k - 1) with R = exp(1/8), so magnitudes from G_MIN = 1e-3 to G_MIN * R**126 ~ 7.0e3 are
covered. Encoding rounds in the log domain, hence the documented bound: for G_MIN / sqrt(R) <= |g| <=
G_MAX * sqrt(R) the relative error is at most sqrt(R) - 1 = exp(1/16) - 1 ~ 6.45%; smaller magnitudes decode
to 0 (absolute error < G_MIN / sqrt(R)); larger ones clip to G_MAX.
"""

from __future__ import annotations

import math
from decimal import Context

import numpy as np

CODECS = ("fp32", "fp16", "onebyte")
G_MIN = 1e-3
LOG_R = 1.0 / 8.0
K_MAX = 127
G_MAX = G_MIN * math.exp(LOG_R * (K_MAX - 1))
ONEBYTE_REL_ERROR = math.exp(LOG_R / 2) - 1.0
BYTES_PER_SCALAR = {"fp32": 4, "fp16": 2, "onebyte": 1}
# |g| of each code, decoded by table so every party gets the same bits: G_MIN times e^(LOG_R (k - 1)) correctly
# rounded (decimal arithmetic), one float64 product. numpy.exp is a last bit off for five codes on AVX-512 CPUs.
_EXP = Context(prec=40)
ONEBYTE_MAGNITUDES = np.asarray([0.0] + [G_MIN * float(_EXP.exp(_EXP.divide(k - 1, 8))) for k in range(1, K_MAX + 1)])


def check_codec(name: str) -> None:
    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}; expected one of {', '.join(CODECS)}")


def encode(values: np.ndarray, codec: str) -> bytes:
    check_codec(codec)
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).all():
        raise ValueError("cannot encode non-finite scalars")
    if codec == "fp32":
        return v.astype("<f4").tobytes()
    if codec == "fp16":
        return np.clip(v, -65504.0, 65504.0).astype("<f2").tobytes()
    mag = np.abs(v)
    with np.errstate(divide="ignore"):
        k = np.rint(np.log(np.maximum(mag, 1e-300) / G_MIN) / LOG_R) + 1
    k = np.clip(k, 1, K_MAX)
    k = np.where(mag < G_MIN * math.exp(-LOG_R / 2), 0, k).astype(np.uint8)
    return (k | np.where(v < 0, 0x80, 0).astype(np.uint8)).tobytes()


def decode(data: bytes, codec: str) -> np.ndarray:
    """float64 values; raises ValueError on a length that is not whole scalars or non-finite contents."""
    check_codec(codec)
    width = BYTES_PER_SCALAR[codec]
    if len(data) % width:
        raise ValueError(f"{len(data)} bytes is not a whole number of {codec} scalars")
    if codec == "onebyte":
        b = np.frombuffer(data, dtype=np.uint8)
        mag = ONEBYTE_MAGNITUDES[b & 0x7F]
        return np.where(b & 0x80, -mag, mag)
    out = np.frombuffer(data, dtype="<f4" if codec == "fp32" else "<f2").astype(np.float64)
    if not np.isfinite(out).all():
        raise ValueError("decoded scalars are not finite")
    return out
