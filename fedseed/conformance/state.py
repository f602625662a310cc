"""Vectors of the parameter layout and the fixed-point states (docs/spec/state.md): the layout and its
fingerprint, the model checksum, coefficients as integers, the wide and the compact state under seed updates,
their bounds, and merged catch-up.

Every value is computed by the reference implementation (``fedseed.layout``, ``fedseed.state``,
``fedseed.directions``, ``fedseed.compact``, ``fedseed.roundlog``) on a tiny model whose weights are set here.
float32 values are their IEEE-754 bits as 8 hex digits (most significant first, ``1.0`` is ``3f800000``);
byte strings are hex in stream order; int64 values are decimal strings.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from fedseed import rng_spec
from fedseed.compact import CompactState, round_coef
from fedseed.directions import DirectionEngine, coef_to_int
from fedseed.layout import build_layout, model_checksum
from fedseed.roundlog import merged_seed_coefs
from fedseed.state import FlatState
from fedseed.strategies.base import GlobalUpdate

F32 = np.float32
GAIN_NAME = "gain_\u00e9"  # a non-ASCII name: UTF-8 in the model checksum, \u-escaped in the fingerprint
# a negative zero at index 12: the base checksum hashes its bits 80000000, every later one w0 + 0.0 = +0.0
WEIGHT = [[0.25, -1.5, 0.125, 1.0, -0.0625], [0.3, -0.3, 0.7, 1.1, -1.2], [1e-3, -1e-3, -0.0, 1.49, -0.5]]
BIAS = [0.01, -0.02, 0.005]
GAIN = [-2.0, 0.5, 1.25, 2.5 * 2**-27, 3.5 * 2**-27, -2.5 * 2**-27, 0.1]  # three ties at the compact unit 2**-27
FROZEN = [7.0, -7.0]
PATTERNS = [r"^lin\.", "gain"]
MODEL = ("root module: child 'lin' (a Linear 5 -> 3: parameters 'weight' [3, 5] then 'bias' [3]), then its own "
         "parameter 'frozen' [2], then child 'blk' (no child; own parameter 'gain_\u00e9' [7]); buffers on root: "
         "'count' (int64, shape []) then 'scale' (float32, shape [1])")
# global indices read back: first and last element of each tensor, first and last padding element after it,
# and the negative zero (12)
INDICES = [0, 12, 14, 15, 63, 64, 66, 67, 127, 128, 134, 135, 191]
REAL = [0, 12, 14, 64, 66, 128, 134]  # of these, the elements that belong to a tensor


def f32_bits(x: float) -> str:
    return f"{int(np.asarray(x, F32).view(np.uint32)):08x}"


def _bits(t: torch.Tensor, indices: list[int]) -> list[str]:
    words = t.detach().cpu().view(torch.int32).numpy().view(np.uint32)
    return [f"{int(words[i]):08x}" for i in indices]


class Tiny(torch.nn.Module):
    """The model every vector starts from (MODEL says its structure; parameter order is torch's)."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # its random init is overwritten: leave the caller's generator be
            self.lin = torch.nn.Linear(5, 3)
        self.frozen = torch.nn.Parameter(torch.tensor(FROZEN))
        self.blk = torch.nn.Module()
        self.blk.register_parameter(GAIN_NAME, torch.nn.Parameter(torch.tensor(GAIN, dtype=torch.float32)))
        self.register_buffer("count", torch.tensor(3, dtype=torch.int64))
        self.register_buffer("scale", torch.tensor([0.5]))
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor(WEIGHT))
            self.lin.bias.copy_(torch.tensor(BIAS))
        for p in self.parameters():
            p.requires_grad_(False)


def _layout():
    model = Tiny()
    return model, build_layout(model, PATTERNS, model_checksum(model))


def _wide(engine: DirectionEngine | None = None) -> FlatState:
    model, layout = _layout()
    return FlatState(model, layout, engine or DirectionEngine("eager"))


def _compact() -> CompactState:
    model, layout = _layout()
    return CompactState(model, layout, DirectionEngine("eager"))


def _update(kind: str, seeds: list[int], coefs: list[float], starts: list[int] | None = None,
            stops: list[int] | None = None, round_idx: int = 1) -> GlobalUpdate:
    return GlobalUpdate(round_idx, kind, np.asarray(seeds, np.int64), np.asarray(coefs, F32),
                        None if starts is None else np.asarray(starts, np.int64),
                        None if stops is None else np.asarray(stops, np.int64))


def _update_inputs(u: GlobalUpdate) -> dict:
    out = {"kind": u.kind, "seeds": [str(s) for s in u.seeds.tolist()], "coefs": [f32_bits(c) for c in u.coefs]}
    if u.starts is not None:
        out["starts"], out["stops"] = u.starts.tolist(), u.stops.tolist()
    return out


# ---- the layout and the model checksum ----------------------------------------------------------------------
def layout_vector() -> dict:
    model, layout = _layout()
    doc = {"spec": rng_spec.SPEC_VERSION, "base": layout.base_checksum,
           "slots": [[s.name, list(s.shape), s.dtype, s.offset] for s in layout.slots]}
    text = json.dumps(doc, sort_keys=True)
    if hashlib.sha256(text.encode()).hexdigest() != layout.fingerprint():
        raise AssertionError("the fingerprint text below is not what Layout.fingerprint hashes")
    params = dict(model.named_parameters())
    return {"inputs": {"model": MODEL,
                       "parameters": [{"name": n, "shape": list(p.shape), "values": [f32_bits(v) for v in
                                                                                    p.reshape(-1).tolist()]}
                                      for n, p in params.items()],
                       "trainable_patterns": PATTERNS, "base": layout.base_checksum},
            "expected": {"slots": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype, "offset": s.offset,
                                    "numel": s.numel, "padded": s.padded} for s in layout.slots],
                         "size": layout.size, "fingerprint_text": text, "fingerprint": layout.fingerprint()}}


def model_checksum_vector() -> dict:
    model = Tiny()
    entries, stream = [], b""
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        data = t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        shape_text = str(tuple(t.shape))
        entries.append({"name": name, "dtype": str(t.dtype).removeprefix("torch."), "shape_text": shape_text,
                        "data": data.hex()})
        stream += name.encode() + shape_text.encode() + data
    digest = model_checksum(model)
    if hashlib.blake2b(stream, digest_size=16).hexdigest() != digest:
        raise AssertionError("the stream below is not what model_checksum hashes")
    return {"inputs": {"model": MODEL, "entries": entries},
            "expected": {"stream": stream.hex(), "blake2b_128": digest}}


# ---- coefficients ---------------------------------------------------------------------------------------------
COEFS = {
    # ties of coef * Z_UNIT * 2**56 at k + 1/2 (rademacher: multiples of 2**-57; gaussian: of 2**-49), negatives,
    # the bound, and values past it (refused: null)
    "rademacher": [2.0**-57, 3 * 2.0**-57, 5 * 2.0**-57, 7 * 2.0**-57, -(2.0**-57), -3 * 2.0**-57, -5 * 2.0**-57,
                   2.0**-56, 0.1, -0.1, 0.0125, 1.0, -1.0, float(np.nextafter(F32(1), F32(2))), float("nan"),
                   float("inf")],
    "gaussian": [2.0**-49, 3 * 2.0**-49, 5 * 2.0**-49, -3 * 2.0**-49, -5 * 2.0**-49, 2.0**-48, 0.1, -0.1, 0.01,
                 1.0, -1.0, float(np.nextafter(F32(-1), F32(-2)))],
}


def _int_or_none(coef: float, kind: str) -> str | None:
    try:
        return str(coef_to_int(coef, kind))
    except ValueError:
        return None


def coef_to_int_vector() -> dict:
    return {"inputs": {kind: [f32_bits(c) for c in values] for kind, values in COEFS.items()},
            "expected": {kind: [_int_or_none(float(F32(c)), kind) for c in values] for kind, values in COEFS.items()}}


# ---- the wide state -------------------------------------------------------------------------------------------
WIDE_UPDATES = [
    _update("rademacher", [11, 2**62 + 5, 123456789], [0.0125, -0.00037, 2e-6]),
    _update("rademacher", [7, 8], [0.003, -0.25], [64, 0], [192, 64], round_idx=2),
]
GAUSS_UPDATES = [
    _update("gaussian", [5, 2**63 - 1], [0.01, -0.002]),
    _update("gaussian", [6], [0.5], [128], [192], round_idx=2),
]


def _wide_snapshot(state: FlatState) -> dict:
    return {"delta": [str(int(state.delta[i])) for i in INDICES], "weights": _bits(state.w, INDICES),
            "checksum": state.checksum()}


def wide_base_vector() -> dict:
    """The base as loaded (round 0), then after an update with no seeds: the weights re-materialised from
    (w0, delta = 0), where the negative zero becomes +0.0."""
    state = _wide()
    base = {"weights": _bits(state.w, INDICES), "checksum": state.checksum()}
    _update("rademacher", [], []).apply_to(state)
    return {"inputs": {"layout": "state.layout", "indices": INDICES},
            "expected": {**base, "after_empty_update": {"weights": _bits(state.w, INDICES),
                                                        "checksum": state.checksum()}}}


def wide_materialize_vector() -> dict:
    """w = w0 + float32(delta) * 2**-56 on one 64-element range, with rounding ties at each step."""
    cases = [(0.0, 2**24 + 1), (0.0, 2**24 + 3), (0.0, 2**54 + 2**30 + 1), (0.0, -(2**54 + 2**30 + 1)),
             (0.0, 2**54 + 2**30), (0.0, 1), (0.0, 2**62 - 1), (0.0, -(2**62)), (1.0, 2**32), (1.0, 2**32 + 1),
             (1.0, 3 * 2**32), (-1.0, -(2**32)), (0.3, -(2**33)), (1e-3, 12345678901234)]
    w0 = torch.zeros(64, dtype=torch.float32)
    delta = torch.zeros(64, dtype=torch.int64)
    for i, (a, d) in enumerate(cases):
        w0[i], delta[i] = a, d
    w = torch.empty(64, dtype=torch.float32)
    DirectionEngine("eager").materialize(w, w0, delta)
    n = len(cases)
    return {"inputs": {"w0": _bits(w0, list(range(n))), "delta": [str(d) for _, d in cases]},
            "expected": {"weights": _bits(w, list(range(n)))}}


def _wide_apply(updates: list[GlobalUpdate]) -> dict:
    state = _wide()
    after = []
    for u in updates:
        u.apply_to(state)
        after.append({"coef_ints": [str(c) for c in u.coef_ints().tolist()], **_wide_snapshot(state)})
    return {"inputs": {"layout": "state.layout", "indices": INDICES, "updates": [_update_inputs(u) for u in updates]},
            "expected": {"after": after}}


def wide_dense_vector() -> dict:
    """A dense update (the first-order baseline; never on the wire): delta += round_half_even(u * 2**56)."""
    values = {0: 2.0**-57, 14: 3 * 2.0**-57, 15: 0.25, 64: -3 * 2.0**-57, 66: 5 * 2.0**-57, 128: 0.5, 134: -1e-3}
    state = _wide()
    dense = np.zeros(state.layout.size, F32)
    for i, v in values.items():
        dense[i] = v
    state.apply_dense(torch.from_numpy(dense))
    return {"inputs": {"layout": "state.layout", "dense": {str(i): f32_bits(v) for i, v in values.items()},
                       "indices": INDICES},
            "expected": _wide_snapshot(state)}


def _accepted(state, updates: list[GlobalUpdate]) -> list[bool]:
    out = []
    for u in updates:
        try:
            u.apply_to(state)
            out.append(True)
        except ValueError:
            out.append(False)
    return out


def wide_bound_vector() -> dict:
    sequences = {
        "rademacher": [_update("rademacher", list(range(63)), [1.0] * 63), _update("rademacher", [100], [-1.0])],
        "gaussian": [_update("gaussian", list(range(14)), [1.0] * 14), _update("gaussian", [100], [1.0])],
    }
    out = {}
    for kind, updates in sequences.items():
        state = _wide()
        flags = _accepted(state, updates)
        out[kind] = {"accepted": flags, "checksum": state.checksum()}
    return {"inputs": {"layout": "state.layout",
                       "sequences": {k: [_update_inputs(u) for u in v] for k, v in sequences.items()}},
            "expected": out}


def merged_vector() -> dict:
    """Two rounds merged per (seed, range) equal the two rounds one by one (seed 11 cancels; ranges split keys)."""
    pairs = {
        "whole": [WIDE_UPDATES[0], _update("rademacher", [11, 99], [-0.0125, 0.004], round_idx=2)],
        "ranged": [WIDE_UPDATES[1], _update("rademacher", [7, 7, 8], [0.001, 0.002, 0.25], [64, 0, 0], [192, 64, 64],
                                            round_idx=3)],
    }
    inputs, expected = {}, {}
    for name, rounds in pairs.items():
        kind, merged = merged_seed_coefs(rounds)
        one_by_one = _wide()
        for u in rounds:
            u.apply_to(one_by_one)
        at_once = _wide()
        at_once.apply_rounds(rounds)
        if at_once.checksum() != one_by_one.checksum():
            raise AssertionError("a merged catch-up differs from the rounds one by one")
        inputs[name] = [_update_inputs(u) for u in rounds]
        expected[name] = {"kind": kind,
                          "merged": [{"seed": str(s), "start": None if lo < 0 else lo, "stop": None if hi < 0 else hi,
                                      "coef_int": str(c)} for s, lo, hi, c in merged],
                          "checksum": at_once.checksum()}
    return {"inputs": {"layout": "state.layout", "rounds": inputs}, "expected": expected}


# ---- the compact state ----------------------------------------------------------------------------------------
def _compact_snapshot(state: CompactState) -> dict:
    weights = state.weights(0, state.layout.size)
    return {"q": [int(state.q[i]) for i in INDICES], "weights": _bits(weights, REAL), "checksum": state.checksum()}


def compact_base_vector() -> dict:
    state = _compact()
    return {"inputs": {"layout": "state.layout", "indices": INDICES, "weight_indices": REAL},
            "expected": {"exponents": list(state.exponents), "base_rounded": state.base_rounded,
                         **_compact_snapshot(state)}}


def round_coef_vector() -> dict:
    cases = [(2**25, 30), (-(2**25), 30), (2**25 - 1, 30), (3 * 2**25, 30), (5 * 2**25, 30), (-5 * 2**25, 30),
             (2**26, 30), (2**28, 27), (2**28 - 1, 27), (3 * 2**28, 27), (-(3 * 2**28), 27), (2**56, 28),
             (-(2**56), 30), (7205759511166976, 28)]
    return {"inputs": {"cases": [{"coef_int": str(c), "exponent": s} for c, s in cases]},
            "expected": {"rounded": [str(round_coef(c, s)) for c, s in cases]}}


def compact_apply_vector() -> dict:
    state = _compact()
    classes = sorted(set(state.exponents))
    after = []
    for u in WIDE_UPDATES:
        u.apply_to(state)
        after.append({"class_coefs": [{str(s): str(round_coef(int(c), s)) for s in classes}
                                      for c in u.coef_ints().tolist()], **_compact_snapshot(state)})
    return {"inputs": {"layout": "state.layout", "indices": INDICES, "weight_indices": REAL,
                       "updates": [_update_inputs(u) for u in WIDE_UPDATES]},
            "expected": {"after": after}}


def compact_bound_vector() -> dict:
    """0.75 then its negation then 0.75 again: the running bound says no to the third, the exact maximum yes;
    the last update's two entries share a key (seed, range), so it grows no class although each is 1.0."""
    updates = [_update("rademacher", [5], [0.75]), _update("rademacher", [5], [-0.75]),
               _update("rademacher", [6], [0.75]), _update("rademacher", [9], [1.0]),
               _update("rademacher", [10], [1.0]), _update("rademacher", [10], [1.0], [128], [192]),
               _update("rademacher", [11, 11], [1.0, -1.0])]
    state = _compact()
    flags = _accepted(state, updates)
    return {"inputs": {"layout": "state.layout", "updates": [_update_inputs(u) for u in updates]},
            "expected": {"accepted": flags, "checksum": state.checksum()}}


def compact_rounds_vector() -> dict:
    """Rounding is per round and class: two rounds of 3 * 2**25 units give 2 + 2 at exponent 30, where rounding
    their merged sum 6 * 2**25 would give 3."""
    rounds = [_update("rademacher", [21], [3 * 2.0**-31]), _update("rademacher", [21], [3 * 2.0**-31], round_idx=2)]
    one_by_one = _compact()
    for u in rounds:
        u.apply_to(one_by_one)
    at_once = _compact()
    at_once.apply_rounds(rounds)
    if at_once.checksum() != one_by_one.checksum():
        raise AssertionError("compact catch-up differs from the rounds one by one")
    classes = sorted(set(one_by_one.exponents))
    total = sum(int(u.coef_ints()[0]) for u in rounds)
    return {"inputs": {"layout": "state.layout", "rounds": [_update_inputs(u) for u in rounds]},
            "expected": {"per_round": [{str(s): str(round_coef(int(u.coef_ints()[0]), s)) for s in classes}
                                       for u in rounds],
                         "rounded_merged_sum_not_used": {str(s): str(round_coef(total, s)) for s in classes},
                         "checksum": one_by_one.checksum()}}


def vectors() -> dict:
    return {
        "layout": layout_vector(),
        "model_checksum": model_checksum_vector(),
        "coef_to_int": coef_to_int_vector(),
        "wide_base": wide_base_vector(),
        "wide_materialize": wide_materialize_vector(),
        "wide_apply": _wide_apply(WIDE_UPDATES),
        "wide_apply_gaussian": _wide_apply(GAUSS_UPDATES),
        "wide_dense": wide_dense_vector(),
        "wide_bound": wide_bound_vector(),
        "merged": merged_vector(),
        "compact_base": compact_base_vector(),
        "round_coef": round_coef_vector(),
        "compact_apply": compact_apply_vector(),
        "compact_bound": compact_bound_vector(),
        "compact_rounds": compact_rounds_vector(),
    }
