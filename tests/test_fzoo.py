"""FZOO: N one-sided probes a step normalised by the spread of their losses; every party rebuilds the update as
FedKSeed's, so it is exact and order-free; it solves the convex problem."""

import numpy as np
import pytest
import torch
from convex import Problem

from fedseed.codecs import decode, encode
from fedseed.strategies.base import ClientResult, RunSetup
from fedseed.strategies.fzoo import FZOO, FZOOConfig


def test_a_steps_scalars_are_the_normalised_probe_differences():
    p = Problem(num_clients=1)
    s = FZOO(lr=0.01, eps=1e-3, local_steps=1, num_seeds=64, perturbations=4).setup(RunSetup(5, 3, 1, p.layout))
    plan = s.configure_round(1, [0])
    batch = p.data[0]
    seeds = [int(s.pool[s.step_index(plan, 0, i)]) for i in range(4)]
    with torch.no_grad():
        base = float(p.objective.loss(p.model, batch))
        probes = []
        for seed in seeds:
            p.state.perturb(seed, 1e-3, "rademacher")
            probes.append(float(p.objective.loss(p.model, batch)))
            p.state.restore()
    expected = (np.asarray(probes) - base) / (4 * np.std(probes))
    result = s.local_work(p.context(1, 0), plan, 0)
    assert np.allclose(decode(result.payload, "fp32"), expected, rtol=1e-5)
    assert result.train_loss == pytest.approx(base)
    update = s.aggregate(plan, [result])  # FedKSeed's rebuild: -lr a_i on the probes' pool indices
    assert sorted(update.pool_indices.tolist()) == sorted({s.step_index(plan, 0, i) for i in range(4)})


def test_fzoo_drives_the_convex_problem_to_its_optimum():
    p = Problem()
    p.run(FZOOConfig(name="fzoo", lr=0.02, eps=1e-3, local_steps=20, num_seeds=512, perturbations=4), 40)
    assert p.error() < 0.1, p.error()


@pytest.mark.parametrize("settings, message", [
    ({"direction": "gaussian"}, "perturbs along Rademacher directions"),
    ({"perturbations": 2}, "strategy.perturbations must be >= 3"),
])
def test_bad_fzoo_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        FZOO(**settings)


def test_a_payload_with_the_wrong_number_of_probe_scalars_is_refused():
    p = Problem(num_clients=1)
    s = FZOO(lr=0.01, local_steps=2, num_seeds=64, perturbations=4).setup(RunSetup(5, 3, 1, p.layout))
    plan = s.configure_round(1, [0])
    short = ClientResult(1, 0, encode(np.zeros(2), "fp32"), 1, 0.0)  # one scalar a step, not N
    with pytest.raises(ValueError, match="sent 2 scalars, expected 8"):
        s.aggregate(plan, [short])
    assert s.max_payload_bytes() == 2 * 4 * 4  # what the coordinator reads at most: N scalars a step
