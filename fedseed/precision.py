"""Which dtype a party's forwards compute in (model.compute_dtype, client.compute_dtype).

Forwards are local: the state every party compares is exact and the same in any forward dtype, so each party
resolves "auto" on its own hardware. "auto" is bf16 where the device multiplies bf16 natively (a CUDA device
that supports it; a CPU with AVX512-BF16 or AMX), fp32 elsewhere: on a CPU without them, bf16 matmuls are
emulated and slower than fp32.
"""

from __future__ import annotations

import functools
import pathlib

import torch

NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16(device: str) -> bool:
    """Whether `device` runs bf16 matmuls in hardware."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def forward_dtype(name: str, device: str) -> torch.dtype:
    """The dtype of the forwards for a compute_dtype name on a device ("auto" resolved here)."""
    if name == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    if name not in NAMES:
        raise ValueError(f"unknown compute dtype {name!r}; expected auto, {', '.join(NAMES)}")
    return NAMES[name]
