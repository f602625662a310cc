"""Streaming a compact state's weights into the forward: each module owning trainable weights gets them, with
the active perturbation, for the length of its own call, in one scratch buffer shared by all modules.

A Linear or Embedding layer larger than ``CHUNK_ELEMENTS`` (the vocabulary matrices: SmolLM2's tied one is a
fifth of the model) is computed over chunks of its rows instead, so the scratch buffer is the size of a chunk
or of the largest small module, never of a whole vocabulary matrix: a Linear computes its outputs chunk by
chunk, an Embedding looks up the ids that fall in each chunk. Every other module gets its weights whole through
a forward pre-hook and hands them back in a forward hook; between calls a parameter holds a zero-byte NaN
placeholder of its shape, so a read outside a call is loud.
"""

from __future__ import annotations

import contextlib
import math
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from fedseed.compact import CompactState

CHUNK_ELEMENTS = 1 << 22  # 4M weights (16 MiB in fp32) per chunk of a large layer


def placeholder(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """What a parameter holds between forwards: its shape and dtype, no memory, and NaN if read by mistake."""
    return torch.full((), math.nan, dtype=dtype, device=device).expand(shape)


class Streamer:
    """The hooks and chunked forwards of one compact state's model."""

    def __init__(self, state: CompactState, params: dict[str, torch.nn.Parameter],
                 chunk_elements: int = CHUNK_ELEMENTS) -> None:
        self.state, self.chunk_elements = state, chunk_elements
        slot_of = {id(params[s.name]): i for i, s in enumerate(state.layout.slots)}
        self.owners: dict[torch.nn.Module, list[tuple[torch.nn.Parameter, int]]] = {}
        for module in state.model.modules():
            own = [(p, slot_of[id(p)]) for p in module.parameters(recurse=False) if id(p) in slot_of]
            if own:
                self.owners[module] = own
        for module in self.owners:
            if any(child is not module and child in self.owners for child in module.modules()):
                raise ValueError("a module owning trainable weights contains another: the compact state "
                                 "streams one module at a time (use model.state = \"wide\")")
        self.chunked = {m: rows for m in self.owners if (rows := self._chunk_rows(m))}
        whole = [sum(state.layout.slots[i].padded for _, i in own) for m, own in self.owners.items()
                 if m not in self.chunked]
        chunks = [rows * self._row_elements(m) + 64 for m, rows in self.chunked.items()]
        self.scratch = torch.empty(max(whole + chunks, default=0), dtype=state.compute_dtype, device=state.device)
        self.placeholders = {id(p): placeholder(state.layout.slots[i].shape, state.compute_dtype, state.device)
                             for own in self.owners.values() for p, i in own}
        self.handles: list = []
        self._release_all()
        self._install()

    # --- which layers are chunked, and by how many rows -------------------------------------------------
    @staticmethod
    def _row_elements(module: torch.nn.Module) -> int:
        return module.in_features if isinstance(module, torch.nn.Linear) else module.embedding_dim

    def _chunk_rows(self, module: torch.nn.Module) -> int:
        """Rows per chunk of a large Linear or Embedding whose only trainable weight is its matrix (0: whole)."""
        own = self.owners[module]
        if not isinstance(module, torch.nn.Linear | torch.nn.Embedding) or len(own) != 1 or own[0][0] is not \
                module.weight or module.weight.numel() <= self.chunk_elements:
            return 0
        if isinstance(module, torch.nn.Embedding) and module.max_norm is not None:
            return 0  # max_norm renormalises rows in place: not for streamed weights
        per_row = self._row_elements(module)
        align = 32 // math.gcd(per_row, 32)  # a chunk starts on a whole hash word
        return max(align, self.chunk_elements // per_row // align * align)

    # --- filling and releasing -------------------------------------------------------------------------
    def _install(self) -> None:
        for module in self.owners:
            if module in self.chunked:
                kind = _linear if isinstance(module, torch.nn.Linear) else _embedding
                module.forward = types.MethodType(lambda mod, x, k=kind: k(self, mod, x), module)
                continue
            self.handles.append(module.register_forward_pre_hook(self._fill))
            self.handles.append(module.register_forward_hook(self._release))

    def _uninstall(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        for module in self.chunked:
            del module.forward  # back to the class's forward

    def _check_mode(self) -> None:
        if torch.is_grad_enabled():
            raise RuntimeError("the compact state streams weights for forwards without autograd only "
                               "(run under torch.no_grad or torch.inference_mode)")

    def _exact(self) -> contextlib.AbstractContextManager:
        """Materialising runs outside any autocast of the forward: the weights are the state's, in their dtype
        (and the compiled kernels see one global state, not one per autocast setting)."""
        return torch.autocast(self.state.device.type, enabled=False)

    def _fill(self, module: torch.nn.Module, args: tuple) -> None:
        self._check_mode()
        cursor = 0
        for p, i in self.owners[module]:
            slot = self.state.layout.slots[i]
            buf = self.scratch[cursor:cursor + slot.padded]
            with self._exact():
                self.state.weights(slot.offset, slot.offset + slot.padded, self.state.perturbation, buf)
            p.data = buf[:slot.numel].view(slot.shape)
            cursor += slot.padded

    def _release(self, module: torch.nn.Module, args: tuple, output: object) -> None:
        for p, _ in self.owners[module]:
            p.data = self.placeholders[id(p)]

    def _release_all(self) -> None:
        for own in self.owners.values():
            for p, _ in own:
                p.data = self.placeholders[id(p)]

    def rows(self, module: torch.nn.Module) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(first row, end row, the rows' computed weights) chunk by chunk of a chunked layer's matrix."""
        self._check_mode()
        slot = self.state.layout.slots[self.owners[module][0][1]]
        per_row, total = self._row_elements(module), slot.shape[0]
        step = self.chunked[module]
        for r0 in range(0, total, step):
            r1 = min(total, r0 + step)
            lo = slot.offset + r0 * per_row
            hi = slot.offset + (r1 * per_row if r1 < total else slot.padded)  # the last chunk takes the padding
            buf = self.scratch[:hi - lo]
            with self._exact():
                self.state.weights(lo, hi, self.state.perturbation, buf)
            yield r0, r1, buf[:(r1 - r0) * per_row].view(r1 - r0, per_row)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Every trainable parameter holds its computed weights (a fresh buffer each) for the duration."""
        self._uninstall()
        try:
            for own in self.owners.values():
                for p, i in own:
                    slot = self.state.layout.slots[i]
                    p.data = self.state.weights(slot.offset, slot.offset + slot.padded)[:slot.numel].view(slot.shape)
            yield
        finally:
            self._release_all()
            self._install()


def _linear(streamer: Streamer, module: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    out = x.new_empty(*x.shape[:-1], module.out_features)
    for r0, r1, w in streamer.rows(module):
        bias = None if module.bias is None else module.bias[r0:r1]
        out[..., r0:r1] = F.linear(x, w, bias)
    return out


def _embedding(streamer: Streamer, module: torch.nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= module.num_embeddings):
        raise IndexError(f"index out of range of an embedding of {module.num_embeddings} rows")
    out = torch.empty(*ids.shape, module.embedding_dim, dtype=streamer.state.compute_dtype, device=ids.device)
    for r0, r1, w in streamer.rows(module):
        hit = (ids >= r0) & (ids < r1)
        if bool(hit.any()):
            out[hit] = w[ids[hit] - r0]
    return out
