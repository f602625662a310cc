"""The model's trainable weights as one flat buffer, and the global state as base + exact fixed-point delta.

``w`` (fp32) is what the model computes with: every trainable parameter is a view into it. ``w0`` is the base
model's weights and ``delta`` (int64, units of 2**-56) the sum of every applied global update, so the global
weights are always ``w = w0 + float32(delta) * 2**-56`` -- a pure function of (base, delta). Local work
(perturbations, local steps) changes ``w`` only and is discarded exactly by re-materialising.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from fedseed import rng_spec
from fedseed.directions import DELTA_SHIFT, DirectionEngine
from fedseed.layout import Layout

Z_INT_MAX = {"rademacher": 1, "gaussian": int(np.abs(rng_spec.gauss_table()).max())}
DELTA_BOUND_LIMIT = 2**62  # below int64's range with room for one more update's rounding


def seed_growth(coef_ints: np.ndarray, kind: str) -> int:
    """How much a seed update can add to max |delta|: sum |c_k| * max |z_int|."""
    return int(np.abs(coef_ints).sum()) * Z_INT_MAX[kind]


class FlatState:
    def __init__(self, model: torch.nn.Module, layout: Layout, engine: DirectionEngine) -> None:
        params = dict(model.named_parameters())
        device = next(iter(params.values())).device
        self.layout = layout
        self.engine = engine
        self.model = model
        self.w = torch.zeros(layout.size, dtype=torch.float32, device=device)
        for slot in layout.slots:
            p = params[slot.name]
            if p.dtype != torch.float32:
                raise ValueError(f"parameter {slot.name} is {p.dtype}; master weights must be float32")
            view = self.w[slot.offset:slot.offset + slot.numel].view(slot.shape)
            view.copy_(p.data)
            p.data = view  # the model now computes with the flat buffer
        self.w0 = self.w.clone()
        self.delta = torch.zeros(layout.size, dtype=torch.int64, device=device)
        self.delta_bound = 0  # an upper bound of max |delta|, kept on the host

    @property
    def device(self) -> torch.device:
        return self.w.device

    def restore(self) -> None:
        """Discard local work: w = w0 + delta."""
        self.engine.materialize(self.w, self.w0, self.delta)

    def global_weights(self, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """A new tensor holding w0 + delta over [lo, hi): the state local work started from."""
        hi = self.layout.size if hi is None else hi
        out = torch.empty_like(self.w[lo:hi])
        self.engine.materialize(out, self.w0[lo:hi], self.delta[lo:hi])
        return out

    def apply_seeds(self, seeds: np.ndarray, coef_ints: np.ndarray, kind: str,
                    starts: np.ndarray | None = None, stops: np.ndarray | None = None) -> None:
        """delta += sum_k coef_k z(seed_k) (on [start_k, stop_k) when given), then re-materialise w."""
        self._grow_bound(seed_growth(coef_ints, kind))
        ranges: dict[tuple[int, int], tuple[list[int], list[int]]] = {}  # one pass per range for all its seeds
        for k, (seed, c) in enumerate(zip(seeds.tolist(), coef_ints.tolist())):
            lo = 0 if starts is None else int(starts[k])
            hi = self.layout.size if stops is None else int(stops[k])
            group = ranges.setdefault((lo, hi), ([], []))
            group[0].append(int(seed))
            group[1].append(int(c))
        for (lo, hi), (group_seeds, group_coefs) in ranges.items():
            self.engine.accumulate_many(self.delta[lo:hi], lo, group_seeds, group_coefs, kind)
        self.restore()

    def apply_dense(self, update: torch.Tensor) -> None:
        """delta += round(update / 2**-56) elementwise (the first-order baseline's dense update)."""
        self.add_dense(update)
        self.restore()

    def add_dense(self, update: torch.Tensor) -> None:
        ints = torch.round(update.to(torch.float64) * 2.0**DELTA_SHIFT).to(torch.int64)
        self._grow_bound(int(ints.abs().max()) if ints.numel() else 0)
        self.delta.add_(ints.to(self.device))

    def _grow_bound(self, amount: int) -> None:
        """Refuse an update that could overflow int64 delta (a conservative running bound)."""
        if self.delta_bound + amount >= DELTA_BOUND_LIMIT:
            raise ValueError("update would overflow the fixed-point state: coefficients are far too large")
        self.delta_bound += amount

    def checksum(self) -> str:
        """blake2b of the materialised trainable weights (the state every party must agree on)."""
        h = hashlib.blake2b(digest_size=16)
        h.update(self.w.detach().to("cpu").numpy().tobytes())
        return h.hexdigest()

    def delta_digest(self) -> str:
        return hashlib.blake2b(self.delta.to("cpu").numpy().tobytes(), digest_size=16).hexdigest()
