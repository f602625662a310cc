"""The compact state: int32 fixed point streamed into the forward, exact under every update and undo."""

import numpy as np
import pytest
import torch
from inprocess import BUILDING

from fedseed.compact import HEADROOM_BITS, MAX_EXPONENT, CompactState, exponent_for, round_coef
from fedseed.directions import DirectionEngine, coef_to_int
from fedseed.layout import build_layout, model_checksum
from fedseed.models import tiny_llama
from fedseed.strategies.base import GlobalUpdate

IDS = torch.tensor([[5, 17, 42, 99, 3, 64, 7, 12]])


def tiny(seed: int = 0, bf16_base: bool = False):
    with BUILDING:
        lm = tiny_llama(seed)
    if bf16_base:  # weights a bf16 checkpoint would hold, kept in fp32
        for p in lm.model.parameters():
            p.data = p.data.to(torch.bfloat16).to(torch.float32)
    return lm.model


def compact(model, backend="compiled", **kw):
    layout = build_layout(model, None, model_checksum(model))
    return CompactState(model, layout, DirectionEngine(backend), **kw)


def logits(model) -> torch.Tensor:
    with torch.inference_mode():
        return model(IDS).logits


def seeds_update(rng, n, round_idx=1, scale=1e-4):
    return GlobalUpdate(round_idx, "rademacher", rng.integers(0, 2**62, n).astype(np.int64),
                        (rng.standard_normal(n) * scale).astype(np.float32))


def test_exponent_keeps_headroom_and_rounding_is_symmetric():
    for m in (1e-6, 0.02, 0.4355, 1.0, 1.96, 9.25):
        s = exponent_for(m)
        assert m * 2.0**s < 2**HEADROOM_BITS and (s == MAX_EXPONENT or m * 2.0**(s + 1) >= 2**HEADROOM_BITS)
    assert exponent_for(0.0) == MAX_EXPONENT
    for c in (1, 2**25, 2**26 - 1, 2**26, 3 * 2**25, 123456789012):
        for s in (26, 28, 30):
            assert round_coef(-c, s) == -round_coef(c, s)
    assert round_coef(3 * 2**25, 30) == 2 and round_coef(2**25 - 1, 30) == 0  # half away from zero


def test_streamed_forward_equals_the_same_weights_held_resident():
    model = tiny(bf16_base=True)
    reference = logits(model)
    state = compact(model)
    assert state.base_rounded == 0  # bf16-representable weights are exact in the state
    assert torch.equal(logits(model), reference)
    for p in model.parameters():
        assert torch.isnan(p).all()  # between forwards no module holds weights
    with state.resident():
        assert torch.equal(logits(model), reference)


def test_large_layers_stream_in_chunks_of_rows():
    model = tiny(bf16_base=True)
    reference = logits(model)
    state = compact(model, chunk_elements=1000)  # the 260 x 32 tied vocabulary matrix: chunks of 31 rows
    chunked = state._streamer.chunked
    assert chunked[model.model.embed_tokens] == chunked[model.lm_head] == 31 and len(chunked) > 2  # the MLPs too
    assert state._streamer.scratch.numel() < 2000
    torch.testing.assert_close(logits(model), reference, rtol=1e-6, atol=1e-6)
    state.perturb(3, 1e-3, "rademacher")
    whole = compact(tiny(bf16_base=True))
    whole.perturb(3, 1e-3, "rademacher")
    torch.testing.assert_close(logits(model), logits(whole.model), rtol=1e-6, atol=1e-6)
    with pytest.raises(IndexError, match="out of range"):
        with torch.inference_mode():
            model(torch.tensor([[1, 999]]))


def test_perturbed_forward_adds_scale_z_to_the_computed_weights():
    model, ref = tiny(), tiny()
    state = compact(model)
    eng = DirectionEngine("eager")
    state.perturb(7, 1e-3, "rademacher")
    got = logits(model)
    with state.resident():  # the unperturbed weights, then + scale z as the wide state would add it
        for (name, p), (_, r) in zip(model.named_parameters(), ref.named_parameters()):
            slot = next(s for s in state.layout.slots if s.name == name)
            z = eng.z(7, slot.offset, slot.padded, "rademacher")[:slot.numel].view(slot.shape)
            r.data = p.data.clone() + 1e-3 * z
    assert torch.equal(got, logits(ref))
    state.perturb(7, -1e-3, "rademacher")
    assert state.perturbation is None
    with pytest.raises(ValueError, match="one perturbation direction"):
        state.perturb(7, 1e-3, "rademacher") or state.perturb(8, 1e-3, "rademacher")


def test_local_steps_are_undone_exactly():
    state = compact(tiny())
    before = state.checksum()
    for t in range(4):
        assert state.step(100 + t, -3e-5 * (t + 1), "rademacher")
    assert state.checksum() != before
    state.restore()
    assert state.checksum() == before and not state.journal


def test_merged_rounds_equal_round_by_round():
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 2**62, 6).astype(np.int64)
    updates = []
    for r in range(1, 6):  # the same few seeds again and again, as a FedKSeed pool gives
        k = rng.integers(0, 6, 4)
        updates.append(GlobalUpdate(r, "rademacher", pool[k], (rng.standard_normal(4) * 1e-4).astype(np.float32)))
    one, merged = compact(tiny()), compact(tiny())
    for u in updates:
        one.apply_seeds(u.seeds, u.coef_ints(), u.kind, u.starts, u.stops)
    merged.apply_rounds(updates)
    assert one.checksum() == merged.checksum()
    summed = compact(tiny())  # summing the 2**-56 coefficients first rounds differently
    total: dict[int, int] = {}
    for u in updates:
        for seed, c in zip(u.seeds.tolist(), u.coef_ints().tolist()):
            total[seed] = total.get(seed, 0) + c
    summed.apply_seeds(np.asarray(list(total)), np.asarray(list(total.values())), "rademacher")
    assert summed.checksum() != one.checksum()


def test_ranges_across_exponent_classes_and_negation():
    state = compact(tiny())
    assert len(set(state.exponents)) > 1
    before = state.checksum()
    size = state.layout.size
    u = GlobalUpdate(1, "rademacher", np.asarray([11, 12, 13], np.int64), np.asarray([1e-4, -2e-4, 5e-5], np.float32),
                     np.asarray([0, 64, size // 2 // 64 * 64], np.int64), np.asarray([size, size // 3 // 64 * 64, size],
                                                                                     np.int64))
    state.apply_seeds(u.seeds, u.coef_ints(), u.kind, u.starts, u.stops)
    w = state.weights(0, size)
    n = u.negated()
    state.apply_seeds(n.seeds, n.coef_ints(), n.kind, n.starts, n.stops)
    assert state.checksum() == before
    # each weight moved by the class-rounded coefficient times +-1, on its range only
    base = compact(tiny()).weights(0, size).double()
    moved = (w.double() - base).abs()
    assert moved[:64].max() > 0 and float(moved.max()) < 4e-4


def test_eager_and_compiled_agree():
    rng = np.random.default_rng(1)
    a, b = compact(tiny(), "eager"), compact(tiny(), "compiled")
    u = seeds_update(rng, 20)
    for st in (a, b):
        st.apply_seeds(u.seeds, u.coef_ints(), u.kind)
        st.step(5, 2e-5, "rademacher")
        st.perturb(9, 1e-3, "rademacher")
    assert a.checksum() == b.checksum()
    size = a.layout.size
    assert torch.equal(a.weights(0, size, a.perturbation), b.weights(0, size, b.perturbation))


def test_embedding_rows_off_word_boundaries_stream_in_chunks():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Embedding(300, 40), torch.nn.Linear(40, 3))  # 40: not whole words
    ids = torch.tensor([[0, 7, 299, 7]])
    with torch.inference_mode():
        reference = model(ids)
    state = compact(model, chunk_elements=1000)
    assert model[0] in state._streamer.chunked
    with torch.inference_mode():
        assert torch.equal(model(ids), reference)


def test_refusals_leave_the_state_unchanged():
    state = compact(tiny())
    before = state.checksum()
    with pytest.raises(ValueError, match="int32 range"):
        state.apply_seeds(np.asarray([1, 2, 3], np.int64), np.asarray([coef_to_int(0.9, "rademacher")] * 3),
                          "rademacher")
    assert state.checksum() == before
    big = np.asarray([coef_to_int(0.45, "rademacher")] * 2)  # 0.9 in all: fits, though every class has many slots
    state.apply_seeds(np.asarray([1, 2], np.int64), big, "rademacher")
    state.apply_seeds(np.asarray([1, 2], np.int64), -big, "rademacher")
    assert state.checksum() == before
    assert state.step(3, 0.99, "rademacher") and not state.step(4, 0.99, "rademacher")  # the second cannot fit
    state.restore()
    assert state.checksum() == before
    with pytest.raises(ValueError, match="rademacher directions only"):
        state.perturb(1, 1e-3, "gaussian")
    with pytest.raises(RuntimeError, match="without autograd"):
        state.model(IDS)
    assert state.checksum() == before
