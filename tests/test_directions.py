"""The torch kernels match the reference spec bit for bit: eager = compiled, any chunking, any thread count,
and CPU = CUDA where a GPU is present."""

import numpy as np
import pytest
import torch

from fedseed import directions, rng_spec
from fedseed.directions import DirectionEngine, coef_to_int, int_to_coef

N = 64 * 300  # a few eager chunks when the chunk is shrunk below


def _ops(engine: DirectionEngine, kind: str, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(N, generator=g).to(device)
    w = w0.clone()
    delta = torch.zeros(N, dtype=torch.int64, device=device)
    engine.accumulate(delta, 0, 11, 123456789, kind)
    engine.accumulate(delta[640:1280], 640, 12, -987654321, kind)
    engine.materialize(w, w0, delta)
    engine.perturb(w, 0, 13, 1e-3, kind)
    engine.perturb(w[64:], 64, 14, -0.37, kind)
    return w.cpu(), delta.cpu()


@pytest.mark.parametrize("backend", directions.BACKENDS)
@pytest.mark.parametrize("kind", rng_spec.KINDS)
def test_kernels_match_reference(kind, backend):
    per = rng_spec.ELEMENTS_PER_WORD[kind]
    for start in (2**32 - 64, per * 2**32 - 128, per * 2**31 - 128):  # word index crossing 2**32 and 2**31
        z = DirectionEngine(backend).z(99, start, 256, kind)
        ref = rng_spec.reference_z(99, list(range(start, start + 256)), kind)
        assert torch.equal(z, torch.tensor(ref, dtype=torch.float32)), start


@pytest.mark.parametrize("kind", rng_spec.KINDS)
def test_many_seeds_per_pass_equals_seed_by_seed(kind):
    """One pass for n seeds = n single-seed passes, bit for bit: full and partial chunks, a range that
    crosses word 2**32, large coefficients of both signs, repeated seeds, and any seed count."""
    rng = np.random.default_rng(3)
    per = rng_spec.ELEMENTS_PER_WORD[kind]
    n = 8192 * 2 + 64 * 37  # two full chunks and a partial one
    for start, count in ((0, 2), (0, 16), (640, 37), (per * 2**32 - 8192 - 1024, 300)):
        seeds = [int(s) for s in rng.integers(0, 2**63 - 1, count)]
        seeds[-1] = seeds[0]
        coefs = [int(c) for c in rng.integers(-2**50, 2**50, count)]
        many = torch.zeros(n, dtype=torch.int64)
        DirectionEngine("compiled").accumulate_many(many, start, seeds, coefs, kind)
        one = torch.zeros(n, dtype=torch.int64)
        for s, c in zip(seeds, coefs):
            DirectionEngine("eager").accumulate(one, start, s, c, kind)
        assert torch.equal(many, one), (start, count)


@pytest.mark.parametrize("kind", rng_spec.KINDS)
def test_eager_equals_compiled(kind):
    we, de = _ops(DirectionEngine("eager"), kind)
    wc, dc = _ops(DirectionEngine("compiled"), kind)
    assert torch.equal(de, dc)
    assert torch.equal(we.view(torch.int32), wc.view(torch.int32))


@pytest.mark.parametrize("kind", rng_spec.KINDS)
def test_chunking_and_threads_do_not_matter(kind, monkeypatch):
    torch.set_num_threads(2)
    w_ref, d_ref = _ops(DirectionEngine("eager"), kind)
    monkeypatch.setattr(directions, "EAGER_CHUNK", 64 * 7)
    torch.set_num_threads(1)
    w1, d1 = _ops(DirectionEngine("eager"), kind)
    wc1, dc1 = _ops(DirectionEngine("compiled"), kind)
    assert torch.equal(d_ref, d1) and torch.equal(d_ref, dc1)
    assert torch.equal(w_ref.view(torch.int32), w1.view(torch.int32))
    assert torch.equal(w_ref.view(torch.int32), wc1.view(torch.int32))


def test_misaligned_range_is_refused():
    with pytest.raises(ValueError, match="aligned"):
        DirectionEngine("eager").perturb(torch.zeros(100), 0, 1, 1.0, "rademacher")
    with pytest.raises(ValueError, match="aligned"):
        DirectionEngine("eager").perturb(torch.zeros(64), 3, 1, 1.0, "rademacher")


def test_coefficient_quantisation():
    for kind in rng_spec.KINDS:
        for c in (1e-7, -3.3e-5, 0.25):
            assert abs(int_to_coef(coef_to_int(c, kind), kind) - c) <= directions.DELTA_UNIT / rng_spec.Z_UNIT[kind]
    with pytest.raises(ValueError):
        coef_to_int(float("nan"), "rademacher")
    with pytest.raises(ValueError):
        coef_to_int(2.0, "rademacher")


def test_fixed_point_sum_is_order_free():
    eng = DirectionEngine("eager")
    coefs = np.random.default_rng(0).normal(size=20) * 1e-4
    deltas = []
    for order in (range(20), reversed(range(20))):
        d = torch.zeros(N, dtype=torch.int64)
        for k in order:
            eng.accumulate(d, 0, 1000 + k, coef_to_int(coefs[k], "gaussian"), "gaussian")
        deltas.append(d)
    assert torch.equal(deltas[0], deltas[1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", rng_spec.KINDS)
@pytest.mark.parametrize("backend", directions.BACKENDS)
def test_cpu_equals_cuda(kind, backend):
    w_cpu, d_cpu = _ops(DirectionEngine("eager"), kind)
    w_gpu, d_gpu = _ops(DirectionEngine(backend), kind, device="cuda")
    assert torch.equal(d_cpu, d_gpu)
    assert torch.equal(w_cpu.view(torch.int32), w_gpu.view(torch.int32))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", rng_spec.KINDS)
def test_many_seeds_cpu_equals_cuda(kind):
    rng = np.random.default_rng(4)
    seeds = [int(s) for s in rng.integers(0, 2**63 - 1, 300)]
    coefs = [int(c) for c in rng.integers(-2**50, 2**50, 300)]
    cpu = torch.zeros(8192 * 2 + 64 * 37, dtype=torch.int64)
    DirectionEngine("compiled").accumulate_many(cpu, 640, seeds, coefs, kind)
    cuda = torch.zeros_like(cpu, device="cuda")
    DirectionEngine("compiled").accumulate_many(cuda, 640, seeds, coefs, kind)
    assert torch.equal(cpu, cuda.cpu())


@pytest.mark.parametrize("backend", directions.BACKENDS)
@pytest.mark.parametrize("kind", rng_spec.KINDS)
def test_project_is_the_dot_product_with_z(kind, backend):
    eng = DirectionEngine(backend)
    g = torch.Generator().manual_seed(1)
    w0 = torch.randn(N, generator=g)
    w = w0 + 0.01 * torch.randn(N, generator=g)
    delta = torch.zeros(N, dtype=torch.int64)
    z = eng.z(21, 128, N - 128, kind).double()
    expected = float(z @ (w0 - w)[128:].double())
    assert eng.project(w[128:], w0[128:], delta[128:], 128, 21, kind) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("kind", rng_spec.KINDS)
def test_perturb_twice_rounds_like_two_passes(kind):
    w0 = torch.randn(N, generator=torch.Generator().manual_seed(5))
    fused_w, two = w0.clone(), w0.clone()
    DirectionEngine("compiled").perturb_twice(fused_w[64:], 64, 31, 1e-3, -3.3e-7, kind)
    DirectionEngine("eager").perturb(two[64:], 64, 31, 1e-3, kind)
    DirectionEngine("eager").perturb(two[64:], 64, 31, -3.3e-7, kind)
    assert torch.equal(fused_w.view(torch.int32), two.view(torch.int32))


def test_many_seeds_refuse_bad_input_and_change_nothing():
    delta = torch.zeros(8192, dtype=torch.int64)
    seeds, coefs = list(range(20)), [5] * 20
    with pytest.raises(ValueError, match="seed"):
        DirectionEngine("compiled").accumulate_many(delta, 0, seeds[:-1] + [-1], coefs, "rademacher")
    with pytest.raises(ValueError, match="aligned"):
        DirectionEngine("compiled").accumulate_many(delta[:100], 0, seeds, coefs, "rademacher")
    with pytest.raises(ValueError, match="kind"):
        DirectionEngine("compiled").accumulate_many(delta, 0, seeds, coefs, "uniform")
    assert not delta.any()
