"""The SPSA estimator: on a quadratic, the mean of g z over 4,096 directions points along the true gradient."""

import numpy as np
import pytest
import torch
from convex import DIM, Problem

from fedseed import rng_spec
from fedseed.zo import spsa_scalar


@pytest.mark.parametrize("kind", rng_spec.KINDS)
def test_spsa_mean_has_high_cosine_with_gradient(kind):
    p = Problem(num_clients=1)
    with torch.no_grad():
        p.model.weight.copy_(torch.randn(1, DIM, generator=torch.Generator().manual_seed(3)))
    p.state.w0.copy_(p.state.w)  # make this point the exact base state
    batch = p.data[0]
    w = p.model.weight
    w.requires_grad_(True)
    loss = p.objective.loss(p.model, batch)
    (grad,) = torch.autograd.grad(loss, w)
    w.requires_grad_(False)
    est = torch.zeros(p.layout.size, dtype=torch.float64)
    n = 4096
    for k in range(n):
        seed = 1000 + k
        res = spsa_scalar(p.state, seed, 1e-3, kind, lambda: p.objective.loss(p.model, batch))
        est += res.g * p.state.engine.z(seed, 0, p.layout.size, kind).double()
        p.state.restore()
    est = (est / n)[:DIM].numpy()
    g = grad[0].double().numpy()
    cos = float(est @ g / (np.linalg.norm(est) * np.linalg.norm(g)))
    assert cos >= 0.95, cos
    assert np.linalg.norm(est) / np.linalg.norm(g) == pytest.approx(1.0, abs=0.1)


def test_restore_is_exact_after_perturbation():
    p = Problem(num_clients=1)
    before = p.state.checksum()
    spsa_scalar(p.state, 5, 1e-3, "gaussian", lambda: p.objective.loss(p.model, p.data[0]), lr=0.1)
    assert p.state.checksum() != before
    p.state.restore()
    assert p.state.checksum() == before
