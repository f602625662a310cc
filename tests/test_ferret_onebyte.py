"""Ferret's projection is unbiased; the one-byte code's error stays inside its documented bound."""

import math

import numpy as np
import pytest
import torch
from convex import Problem

from fedseed import codecs
from fedseed.strategies.base import RunSetup
from fedseed.strategies.ferret import Ferret, FerretConfig, blocks_of


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_ferret_reconstruction_is_unbiased(kind):
    p = Problem(num_clients=1)
    cfg = FerretConfig(name="ferret", lr=0.05, local_steps=3, num_bases=64, server_lr=1.0, direction=kind)
    strategy = Ferret(cfg).setup(RunSetup(1, 1, 1, p.layout))
    base = p.state.w.clone().double()
    recs = []
    for r in range(1, 201):
        p.state.delta.zero_()
        p.state.delta_bound = 0
        p.state.restore()
        plan = strategy.configure_round(r, [0])
        res = strategy.local_work(p.context(r, 0), plan, 0)
        true_delta = (base - p.state.w.double()).numpy()  # w_start - w_end, the same every trial
        p.state.restore()
        strategy.apply(p.state, strategy.aggregate(plan, [res]))
        recs.append((base - p.state.w.double()).numpy())
    recs = np.asarray(recs)
    single = np.linalg.norm(recs[0] - true_delta) / np.linalg.norm(true_delta)
    mean = np.linalg.norm(recs.mean(0) - true_delta) / np.linalg.norm(true_delta)
    assert single > 0.5  # one reconstruction is very noisy (K = d) ...
    assert mean < 0.15  # ... but unbiased: the mean over 200 seeds converges to Delta
    assert mean < single / 5


def test_ferret_blocks_cover_layout():
    from fedseed.layout import build_layout
    from fedseed.models import tiny_llama

    lm = tiny_llama()
    layout = build_layout(lm.model, None, "x")
    blocks = blocks_of(layout)
    assert blocks[0][0] == 0 and blocks[-1][1] == layout.size
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    assert 1 < len(blocks) < len(layout.slots)


def test_onebyte_error_within_documented_bound():
    rng = np.random.default_rng(0)
    lo, hi = codecs.G_MIN * math.exp(-codecs.LOG_R / 2), codecs.G_MAX * math.exp(codecs.LOG_R / 2)
    g = np.exp(rng.uniform(np.log(lo), np.log(hi), 100000)) * rng.choice([-1, 1], 100000)
    data = codecs.encode(g, "onebyte")
    assert len(data) == len(g)
    rel = np.abs(codecs.decode(data, "onebyte") - g) / np.abs(g)
    assert rel.max() <= codecs.ONEBYTE_REL_ERROR + 1e-12
    assert rel.max() > 0.9 * codecs.ONEBYTE_REL_ERROR  # the bound is tight, not loose
    assert codecs.ONEBYTE_REL_ERROR == pytest.approx(0.0645, abs=1e-4)
    tiny = np.asarray([0.0, lo * 0.99, -lo * 0.5])
    assert np.all(np.abs(codecs.decode(codecs.encode(tiny, "onebyte"), "onebyte") - tiny) < lo)
    huge = codecs.decode(codecs.encode(np.asarray([1e9, -1e9]), "onebyte"), "onebyte")
    assert np.allclose(np.abs(huge), codecs.G_MAX)


def test_codecs_roundtrip_and_errors():
    v = np.asarray([0.5, -1.25, 3.0])
    assert np.array_equal(codecs.decode(codecs.encode(v, "fp32"), "fp32"), v)
    assert np.array_equal(codecs.decode(codecs.encode(v, "fp16"), "fp16"), v)
    with pytest.raises(ValueError, match="non-finite"):
        codecs.encode(np.asarray([np.inf]), "fp32")
    with pytest.raises(ValueError, match="whole number"):
        codecs.decode(b"abc", "fp32")
    with pytest.raises(ValueError, match="unknown codec"):
        codecs.encode(v, "int4")
    with pytest.raises(ValueError, match="not finite"):
        codecs.decode(np.asarray([np.nan], "<f4").tobytes(), "fp32")
    torch.manual_seed(0)
