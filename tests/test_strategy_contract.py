"""The strategy contract: aggregate is pure on every strategy, coordinator-side state survives the log, and a
strategy defined outside fedseed registers through its entry point and runs in simulation and over loopback
with equal checksums."""

import os
import pathlib

import numpy as np
import pytest
from convex import Problem

from fedseed import strategies
from fedseed.config import config_schema, load_config
from fedseed.simulations.engine import simulate
from fedseed.simulations.loopback import run_loopback
from fedseed.strategies.base import RunSetup
from fedseed.strategies.fedkseed_pro import FedKSeedPro

TESTS = pathlib.Path(__file__).parent
CONFIGS = {"fedkseed": {"num_seeds": 64, "local_steps": 3}, "fedkseed-pro": {"num_seeds": 64, "local_steps": 3},
           "ferret": {"num_bases": 32, "local_steps": 2, "lr": 0.05}, "onebyte": {"samples_per_step": 2},
           "fedavg": {"local_steps": 2}, "mezo": {"local_steps": 3},
           "fzoo": {"num_seeds": 64, "local_steps": 2, "perturbations": 3}}


def updates_equal(a, b) -> bool:
    fields = ("seeds", "coefs", "starts", "stops", "pool_indices", "dense")
    return all((getattr(a, f) is None and getattr(b, f) is None) or np.array_equal(getattr(a, f), getattr(b, f))
               for f in fields)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_aggregate_is_pure(name):
    n = 1 if name == "mezo" else 3
    p = Problem(num_clients=n)
    strategy = strategies.strategy_class(name)(**{"lr": 0.01, **CONFIGS[name]}).setup(RunSetup(7, 2, n, p.layout))
    plan = strategy.configure_round(1, list(range(n)))
    results = []
    for c in plan.clients:
        p.state.restore()
        results.append(strategy.local_work(p.context(1, c), plan, c))
    p.state.restore()
    payloads, state = [r.payload for r in results], strategy.state_dict()
    first = strategy.aggregate(plan, results)
    again = strategy.aggregate(plan, list(reversed(results))[::-1])
    assert updates_equal(first, again) and [r.payload for r in results] == payloads
    assert strategy.state_dict().keys() == state.keys()
    assert all(np.array_equal(strategy.state_dict()[k], v) for k, v in state.items())  # observe, not aggregate


def test_fedkseed_pro_state_comes_back_from_its_state_dict():
    p = Problem(num_clients=2)
    run = RunSetup(3, 4, 2, p.layout)
    a = FedKSeedPro(num_seeds=16, local_steps=4, lr=0.01).setup(run)
    plan = a.configure_round(1, [0, 1])
    results = [a.local_work(p.context(1, c), plan, c) for c in (0, 1)]
    a.observe(plan, results)
    b = FedKSeedPro(num_seeds=16, local_steps=4, lr=0.01).setup(run)
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a.integer_weights(), b.integer_weights()) and not np.allclose(a.probabilities(), 1 / 16)
    with pytest.raises(ValueError, match="abs_sum and count of 16"):
        b.load_state_dict({"abs_sum": np.zeros(3)})


@pytest.fixture
def walkthrough_installed(tmp_path, monkeypatch):
    """The walkthrough strategy as a package would install it: a dist-info naming its entry point."""
    site = tmp_path / "site"
    dist = site / "fedseed_walkthrough-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fedseed-walkthrough\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[fedseed.strategies]\nfresh-seed-zo = walkthrough_strategy:FreshSeedZO\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setattr(strategies, "_entry_points_read", False)
    yield
    strategies.REGISTRY.pop("fresh-seed-zo", None)


@pytest.mark.federation
def test_strategy_from_another_package_runs_in_simulation_and_over_loopback(walkthrough_installed, tmp_path):
    overrides = ["run.rounds=3", "strategy.name=fresh-seed-zo", "strategy.lr=1e-3", "strategy.local_steps=3",
                 "strategy.clip=50.0"]
    base = tmp_path / "base.toml"  # loopback.toml without FedKSeed's own key (the pool size)
    base.write_text((TESTS.parent / "simulations" / "loopback.toml").read_text().replace("num_seeds = 256\n", ""))
    sim = simulate(load_config(str(base), overrides), str(tmp_path / "sim"), progress=False)
    net = run_loopback(str(base), overrides, str(tmp_path / "net"), quiet=True)
    assert net["clients_agree"] and net["final_checksum"] == sim["final_checksum"]
    assert sim["strategy"] == "fresh-seed-zo" and sim["bytes_up_per_client_round"] == net["bytes_up_per_client_round"]
    schema = config_schema("run")["properties"]["strategy"]["discriminator"]["mapping"]
    assert "fresh-seed-zo" in schema  # its settings are checked and documented like fedseed's own
