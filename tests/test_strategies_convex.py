"""Every strategy drives the convex problem to its optimum; FedKSeed's update is the clients' average."""

import numpy as np
import pytest
import torch
from convex import Problem, rel_err

from fedseed.robust import UNBOUNDED
from fedseed.strategies.base import RunSetup, StrategyConfig
from fedseed.strategies.fedkseed import FedKSeed, FedKSeedConfig
from fedseed.strategies.fedkseed_pro import FedKSeedPro, FedKSeedProConfig
from fedseed.strategies.ferret import FerretConfig
from fedseed.strategies.onebyte import OneByteConfig


@pytest.mark.parametrize("cfg,rounds,tol", [
    (FedKSeedConfig(lr=0.01, eps=1e-3, local_steps=20, num_seeds=512), 40, 0.05),
    (FedKSeedConfig(lr=0.005, eps=1e-3, local_steps=20, num_seeds=512, direction="gaussian", codec="fp16"), 60, 0.05),
    (FedKSeedProConfig(name="fedkseed-pro", lr=0.01, eps=1e-3, local_steps=20, num_seeds=512), 40, 0.05),
    (FerretConfig(name="ferret", lr=0.05, local_steps=5, num_bases=256, server_lr=1.0), 30, 0.05),
    (OneByteConfig(name="onebyte", lr=0.02, eps=1e-3, samples_per_step=4), 300, 0.05),
    (StrategyConfig(name="fedavg", lr=0.05, local_steps=5), 40, 0.01),
])
def test_strategy_reaches_optimum(cfg, rounds, tol):
    p = Problem()
    assert p.error() == pytest.approx(1.0)
    p.run(cfg, rounds)
    assert p.error() < tol, f"{cfg.name}: relative distance to optimum {p.error():.4f}"


def test_fedkseed_update_is_weighted_average_of_local_updates():
    """The paper's rule, with every bound off (robust.UNBOUNDED): the global step is the data-weighted mean."""
    p = Problem(num_clients=3, per_client=40)
    p.data[1] = (p.data[1][0][:10], p.data[1][1][:10])  # unequal data sizes, so weights matter
    strategy = FedKSeed(lr=0.01, eps=1e-3, local_steps=15, num_seeds=64).setup(RunSetup(5, 1, 3, p.layout,
                                                                                         UNBOUNDED))
    plan = strategy.configure_round(1, [0, 1, 2])
    start = p.state.w.clone().double()
    results, local = [], []
    for c in plan.clients:
        p.state.restore()
        results.append(strategy.local_work(p.context(1, c), plan, c))
        local.append((p.state.w.double() - start).numpy())
    p.state.restore()
    update = strategy.aggregate(plan, results)
    strategy.apply(p.state, update)
    n = np.asarray([r.num_samples for r in results], dtype=np.float64)
    expected = sum(wi * li for wi, li in zip(n / n.sum(), local))
    got = (p.state.w.double() - start).numpy()
    assert rel_err(got, expected) <= 1e-5


def test_fedkseed_pro_probabilities_follow_importance():
    cfg = FedKSeedProConfig(name="fedkseed-pro", num_seeds=4)
    s = FedKSeedPro(cfg).setup(RunSetup(0, 1, 1, Problem(num_clients=1).layout))
    assert np.allclose(s.probabilities(), 0.25)
    s.abs_sum[:] = [0.0, 1.0, 2.0, 3.0]
    p = s.probabilities()
    assert np.all(np.diff(p) > 0)
    assert p[-1] / p[0] == pytest.approx(np.e, rel=1e-6)  # the paper's rule: at most e between extremes
    s.cfg.temperature = 0.5
    assert s.probabilities()[-1] / s.probabilities()[0] == pytest.approx(np.e**2, rel=1e-6)


def test_onebyte_join_and_leave():
    p = Problem(num_clients=4)
    cfg = OneByteConfig(name="onebyte", lr=0.02, samples_per_step=2, join=[[3, 3]], leave=[[0, 4]])
    _, rounds = p.run(cfg, 6)
    active = [m["clients"] for m, _, _ in rounds]
    assert active == [3, 3, 4, 3, 3, 3]
    assert all(m["payload_bytes"] == m["clients"] * 2 for m, _, _ in rounds)  # one byte per scalar


def test_bad_payload_is_refused():
    p = Problem(num_clients=2)
    strategy = FedKSeed(FedKSeedConfig(local_steps=3, num_seeds=8)).setup(RunSetup(0, 1, 2, p.layout))
    plan = strategy.configure_round(1, [0, 1])
    res = strategy.local_work(p.context(1, 0), plan, 0)
    res.payload = res.payload[:-4]
    with pytest.raises(ValueError, match="expected 3"):
        strategy.aggregate(plan, [res])
    res.payload = np.asarray([np.nan, 0, 0], "<f4").tobytes()
    with pytest.raises(ValueError, match="not finite"):
        strategy.aggregate(plan, [res])
    torch.manual_seed(0)
