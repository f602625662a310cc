"""strategy.lr_relative: the configured lr is the median step lr * |g|, divided by the median |g| of probes at
the base weights -- so a model whose losses move k times as much per unit step gets a k times smaller lr."""

import math
import pathlib

import pytest
import torch
from convex import Problem
from interrupted import run_cut_at_round

from fedseed.config import ConfigError, load_config
from fedseed.lr_scale import median_abs_g
from fedseed.roundlog import RoundLog
from fedseed.simulations.engine import simulate

SMOKE = "simulations/smoke.toml"


def scale_of(problem: Problem, factor: float) -> float:
    batch = problem.data[0]
    return median_abs_g(problem.state, lambda: factor * float(problem.objective.loss(problem.model, batch)),
                        run_seed=0, eps=1e-3, kind="rademacher")


def test_the_scale_follows_the_loss_and_leaves_the_weights_exactly():
    problem = Problem()
    with torch.no_grad():
        problem.model.weight.normal_()  # away from zero: slopes of every sign
    problem.state.restore()
    before = problem.state.checksum()
    one, hundred = scale_of(problem, 1.0), scale_of(problem, 100.0)
    assert problem.state.checksum() == before
    assert one > 0 and hundred / one == pytest.approx(100.0, rel=1e-5)


def test_a_flat_loss_has_no_scale():
    problem = Problem()
    with pytest.raises(ValueError, match="no usable \\|g\\| scale"):
        median_abs_g(problem.state, lambda: 1.0, run_seed=0, eps=1e-3, kind="rademacher")


def test_a_run_divides_its_lr_by_the_measured_scale_and_keeps_it_on_resume(tmp_path, monkeypatch):
    overrides = ["strategy.lr_relative=true", "strategy.lr=0.02", "model.backend=eager", "model.threads=1"]
    summary = simulate(load_config(SMOKE, overrides), str(tmp_path / "whole"), progress=False)
    rel = summary["lr_relative"]
    assert rel["relative"] == 0.02 and rel["median_abs_g"] > 0
    assert math.isclose(rel["lr"], 0.02 / rel["median_abs_g"])
    with RoundLog.open_existing(tmp_path / "whole") as log:
        assert log.meta("g_scale") == rel["median_abs_g"]
    run_cut_at_round(monkeypatch, load_config(SMOKE, overrides), str(tmp_path / "cut"), 3)
    # resumed from round 2's weights: a scale measured there would differ, so the log's is the one used
    resumed = simulate(load_config(SMOKE, overrides), str(tmp_path / "cut"), progress=False, resume=True)
    assert resumed["final_checksum"] == summary["final_checksum"]
    assert resumed["lr_relative"] == rel


def test_an_absolute_lr_is_what_the_config_says(tmp_path):
    summary = simulate(load_config(SMOKE, ["run.rounds=1"]), str(tmp_path / "run"), progress=False)
    assert "lr_relative" not in summary


@pytest.mark.parametrize("name", ["fedavg", "ferret", "fzoo"])
def test_a_strategy_whose_steps_are_not_lr_times_g_refuses_it(name):
    with pytest.raises(ConfigError, match="strategy.lr_relative"):
        load_config(f"simulations/experiments/sentiment_{name}.toml", ["strategy.lr_relative=true"])


def test_a_coordinator_without_the_model_refuses_it(tmp_path):
    from fedseed.server.config import load_server_config

    path = tmp_path / "server.toml"
    path.write_text(f'extends = "{pathlib.Path(SMOKE).resolve().as_posix()}"\n[server]\nhold_model = false\n')
    with pytest.raises(ConfigError, match="server.clients"):  # the file's other fault, without lr_relative
        load_server_config(str(path))
    with pytest.raises(ConfigError, match="needs a coordinator holding the model"):
        load_server_config(str(path), ["strategy.lr_relative=true"])
