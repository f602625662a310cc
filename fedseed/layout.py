"""The canonical parameter layout: which tensors train, their order, shapes and offsets, and its fingerprint.

Every element of a trainable tensor has a global index ``offset + local_index``; directions are functions
of that index, so two parties agree on z exactly when they agree on the layout. Offsets are padded to
``ALIGN`` elements so hash words never straddle tensors.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import torch

from fedseed import rng_spec
from fedseed.directions import ALIGN


@dataclass(frozen=True)
class TensorSlot:
    name: str
    shape: tuple[int, ...]
    dtype: str
    offset: int

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def padded(self) -> int:
        return -(-self.numel // ALIGN) * ALIGN


@dataclass(frozen=True)
class Layout:
    slots: tuple[TensorSlot, ...]
    base_checksum: str

    @property
    def size(self) -> int:
        """Length of the flat buffer, padding included."""
        last = self.slots[-1]
        return last.offset + last.padded

    @property
    def num_trainable(self) -> int:
        return sum(s.numel for s in self.slots)

    def fingerprint(self) -> str:
        """Hash of the spec version, names, shapes, dtypes, offsets and base weights: parties must match."""
        doc = {"spec": rng_spec.SPEC_VERSION, "base": self.base_checksum,
               "slots": [[s.name, list(s.shape), s.dtype, s.offset] for s in self.slots]}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps({"base_checksum": self.base_checksum,
                           "slots": [[s.name, list(s.shape), s.dtype, s.offset] for s in self.slots]})


def select_trainable(model: torch.nn.Module, patterns: list[str] | None) -> list[tuple[str, torch.nn.Parameter]]:
    """Parameters (deduplicated, in module order) whose names match any regex in patterns (all if None)."""
    named = list(model.named_parameters())  # named_parameters already drops tied duplicates
    if not patterns:
        return named
    compiled = [re.compile(p) for p in patterns]
    chosen = [(n, p) for n, p in named if any(c.search(n) for c in compiled)]
    if not chosen:
        raise ValueError(f"no parameter name matches trainable patterns {patterns}")
    return chosen


def model_checksum(model: torch.nn.Module) -> str:
    """blake2b over every parameter and buffer (name, shape, bytes), in module order."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        # raw bytes (numpy has no bf16); for fp32 the same bytes numpy would give
        h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def build_layout(model: torch.nn.Module, patterns: list[str] | None, base_checksum: str) -> Layout:
    slots = []
    offset = 0
    for name, p in select_trainable(model, patterns):
        slot = TensorSlot(name, tuple(p.shape), str(p.dtype).removeprefix("torch."), offset)
        slots.append(slot)
        offset += slot.padded
    return Layout(tuple(slots), base_checksum)
