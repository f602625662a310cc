"""Private runs in simulation: secure aggregation equals the plain mean up to quantization, DP spends a budget the
accountant (dp-accounting) reports every round and enforces, and a resumed run continues the same budget."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fedseed.accountant import Accountant, calibrate, epsilon_after, round_event
from fedseed.config import ConfigError, load_config
from fedseed.privacy import PrivacySection
from fedseed.results_table import method_label
from fedseed.roundlog import RoundLog
from fedseed.run_inspect import inspect_run
from fedseed.simulations.engine import simulate

SMOKE = "simulations/smoke.toml"
SHARED = ["strategy.shared_seeds=true", "model.backend=eager", "model.threads=1", "run.rounds=3", "eval.every=3"]
SECAGG = ["privacy.secure_aggregation=true", "privacy.clip=1000.0"]


def config(*sets: str):
    return load_config(SMOKE, [*SHARED, *sets])


def run(tmp_path, name: str, *sets: str) -> tuple[list[dict], dict, RoundLog]:
    out = tmp_path / name
    summary = simulate(config(*sets), str(out), progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return rows, summary, RoundLog(out / "log.sqlite")


@pytest.mark.parametrize("sets, match", [
    (["privacy.secure_aggregation=true"], "privacy.clip"),
    (["privacy.secure_aggregation=true", "privacy.clip=1.0", "strategy.shared_seeds=false"], "shared_seeds = true"),
    (["privacy.dp=distributed", "privacy.epsilon=8", "privacy.clip=1.0"], "only private under secure aggregation"),
    (["privacy.dp=central", "privacy.clip=1.0"], "privacy.epsilon"),
    ([*SECAGG, "robust.rule=median"], "robust.rule"),
    ([*SECAGG, "robust.outlier_factor=3"], "robust.outlier_factor"),
    ([*SECAGG, "robust.weighting=samples"], "robust.weighting"),
    ([*SECAGG, "privacy.min_clients=1"], "privacy.min_clients"),
    ([*SECAGG, "privacy.min_clients=4"], "exceeds federation.clients_per_round"),
    (["privacy.secure_aggregation=true", "privacy.clip=1.0", "strategy.name=fedkseed-pro",
      "strategy.shared_seeds=false"], "fedkseed-pro"),
])
def test_what_a_private_run_cannot_do_is_refused_by_key(sets, match):
    with pytest.raises(ConfigError, match=match):
        config(*sets)


def test_secure_aggregation_equals_the_plain_mean_up_to_quantization(tmp_path):
    plain_rows, _, plain = run(tmp_path, "plain", "robust.norm_factor=0", "robust.clip_factor=0")
    rows, summary, private = run(tmp_path, "secagg", *SECAGG)
    a, b = plain.update(1), private.update(1)
    assert np.array_equal(a.pool_indices, b.pool_indices)
    step = 1000.0 / ((2**31 - 1) // 3)  # clip / levels for three clients a round
    assert np.allclose(a.coefs, b.coefs, rtol=1e-6, atol=1e-3 * step)  # lr x one quantization step
    assert abs(rows[-1]["eval_loss"] - plain_rows[-1]["eval_loss"]) < 1e-3
    assert private.client_results(1) == [] and all("train_loss" not in r for r in rows[1:])
    assert [r["clients"] for r in rows[1:]] == [3, 3, 3]
    assert rows[1]["bytes_up"] > plain_rows[1]["bytes_up"]  # keys, shares and unmasking travel too
    assert summary.get("epsilon") is None


def test_dp_reports_epsilon_every_round_and_stays_within_budget(tmp_path):
    rows, summary, _ = run(tmp_path, "central", "privacy.dp=central", "privacy.epsilon=4.0", "privacy.clip=2.0")
    eps = [r["epsilon"] for r in rows[1:]]
    assert eps == sorted(eps) and 0 < eps[0] and eps[-1] <= 4.0
    assert eps[-1] > 3.9  # the noise was calibrated for the planned rounds: the budget is used, not wasted
    assert summary["epsilon"] == eps[-1] and summary.get("stopped") is None
    assert summary["privacy"]["rounds_per_client"] == 3 and summary["privacy"]["noise_multiplier"] > 0
    assert method_label(summary) == f"FedKSeed (dp central, ε = {eps[-1]:.2f})"  # as fedseed report names it
    shown = inspect_run(str(tmp_path / "central"))
    assert "private: dp central (budget epsilon 4.0 at delta 1e-05, clip 2.0); noise multiplier" in shown
    assert "at most 3 rounds per client" in shown
    assert f"{eps[-1]:.3f}" in shown.splitlines()[-1]


def test_a_run_past_its_budget_stops_at_the_last_round_that_fits(tmp_path, capsys):
    # sigma 2 spends epsilon 2.43 in one round and 3.65 in two (delta 1e-5): a budget of 3 fits one round
    rows, summary, log = run(tmp_path, "budget", "privacy.dp=central", "privacy.epsilon=3.0",
                             "privacy.noise_multiplier=2.0", "privacy.clip=2.0")
    assert [r["round"] for r in rows] == [0, 1] and log.last_round() == 1
    assert "privacy budget: round 2" in summary["stopped"] and "past privacy.epsilon = 3.0" in summary["stopped"]
    assert "the run stops after round 1" in capsys.readouterr().err
    assert summary["epsilon"] == rows[1]["epsilon"] <= 3.0


def test_a_resumed_run_reports_the_same_epsilon(tmp_path):
    sets = ["privacy.secure_aggregation=true", "privacy.dp=distributed", "privacy.epsilon=6.0", "privacy.clip=2.0"]
    whole, _, _ = run(tmp_path, "whole", *sets)
    cfg, out = config(*sets), tmp_path / "cut"

    class Stop(Exception):
        pass

    def stop_after_one(record):
        if record.round == 1:
            raise Stop

    with pytest.raises(Stop):
        simulate(cfg, str(out), progress=False, callbacks=[stop_after_one])
    simulate(cfg, str(out), progress=False, resume=True)
    resumed = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epsilon"] for r in resumed[1:]] == [r["epsilon"] for r in whole[1:]]
    assert RoundLog(out / "log.sqlite").strategy_state(3)["privacy.participation"].sum() == 9


def test_accountant_calibration_and_state():
    sigma = calibrate("central", 8, 2.0, 1e-5, lambda s: 0.0)
    assert 1.9 < epsilon_after(round_event("central", sigma), 8, 1e-5) <= 2.0
    acc = Accountant(PrivacySection(dp="central", epsilon=2.0, clip=1.0), sigma, 5)
    assert acc.max_rounds == 8
    acc.spend([0, 1])
    acc.spend([1])
    assert acc.epsilon == acc.epsilon_of(2)
    other = Accountant(PrivacySection(dp="central", epsilon=2.0, clip=1.0), sigma, 5)
    other.load_state_dict(acc.state_dict())
    assert list(other.counts) == [1, 2, 0, 0, 0]
    with pytest.raises(ValueError, match="no privacy accounting"):
        other.load_state_dict({})
    # Skellam's zCDP offset xi is tiny at the field's resolution: distributed costs what central does, to 1e-6
    skellam = epsilon_after(round_event("distributed", sigma, 1e-7), 8, 1e-5)
    assert skellam == pytest.approx(epsilon_after(round_event("central", sigma), 8, 1e-5), abs=1e-5)


def test_readme_private_commands_run_as_written(tmp_path):
    """The README's two privacy commands, from a folder holding the repository's relative paths."""
    repo = pathlib.Path(__file__).parent.parent
    shutil.copytree(repo / "simulations", tmp_path / "simulations", ignore=shutil.ignore_patterns("__pycache__"))
    fedseed = str(pathlib.Path(sys.executable).parent / "fedseed")
    text = (repo / "README.md").read_text(encoding="utf-8")
    commands = [line for line in text.splitlines()
                if "simulations/private.toml" in line or "inspect runs/private" in line]
    assert commands == [".venv/bin/fedseed simulate simulations/private.toml", ".venv/bin/fedseed inspect runs/private"]
    run = subprocess.run([fedseed, "simulate", "simulations/private.toml", "--quiet"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    shown = subprocess.run([fedseed, "inspect", "runs/private"], cwd=tmp_path, capture_output=True, text=True)
    assert shown.returncode == 0 and "secure aggregation (sums over >= 3 clients) + dp distributed" in shown.stdout
    eps = [float(line.split()[-2]) for line in shown.stdout.splitlines()[2:]]
    assert len(eps) == 4 and eps == sorted(eps) and 7.0 < eps[-1] <= 8.0


def test_sums_unmasked_before_a_crash_are_counted_on_resume(tmp_path):
    """A coordinator notes in the log whose data a sum holds before unmasking it; a restart before the round is
    committed counts them, so the round's new attempt cannot release their data uncounted."""
    from fedseed.federation import build_federation
    from fedseed.server.private_rounds import PrivateRounds
    from fedseed.server.rounds import OpenRound
    from fedseed.simulations.engine import reopen

    cfg = config("privacy.secure_aggregation=true", "privacy.dp=distributed", "privacy.epsilon=8.0",
                 "privacy.clip=2.0", "run.rounds=1")
    simulate(cfg, str(tmp_path), progress=False)

    class Held(PrivateRounds):
        def __init__(self, log, machine):  # noqa: ANN001
            self.log, self.machine, self.cfg = log, machine, cfg

    fed = build_federation(cfg)
    log, machine, _ = reopen(tmp_path, cfg, fed)
    saved = machine.private.accountant.counts.copy()
    held = Held(log, machine)
    plan = fed.strategy.configure_round(2, [0, 1, 2])
    held._note_release(OpenRound(plan, 0, 0.0, 0.0, ""), [0, 1, 2])
    held._note_release(OpenRound(fed.strategy.configure_round(1, [3]), 0, 0.0, 0.0, ""), [3])  # committed round
    log.close()
    log, machine, records = reopen(tmp_path, cfg, build_federation(cfg))  # the restart
    assert list(machine.private.accountant.counts) == list(saved)
    Held(log, machine).count_unsaved_releases(records[-1].round)
    assert list(machine.private.accountant.counts - saved) == [1, 1, 1, 0, 0, 0]
    log.close()


def test_skellam_noise_stays_where_numpys_sampler_is_accurate():
    from fedseed.private_round import MAX_MU, PrivateRun
    from fedseed.strategies import strategy_class

    cfg = load_config("simulations/private.toml")
    private = PrivateRun(cfg, strategy_class("fedkseed")(cfg.strategy))
    assert 0 < private.mu <= MAX_MU and private.quantizer.levels > 10**5
    rng = np.random.default_rng(0)
    noise = rng.poisson(private.mu, 400_000) - rng.poisson(private.mu, 400_000)
    z = noise / np.sqrt(2 * private.mu)
    assert abs(z.std() - 1) < 0.01 and np.mean(np.abs(z) > 4) < 1.5e-4  # a Gaussian's tail: 6.3e-5


def test_fedkseed_pro_private_rounds_learn_importance_from_the_released_values(tmp_path):
    rows, _, log = run(tmp_path, "pro", "strategy.name=fedkseed-pro", *SECAGG)
    state = log.strategy_state(3)
    assert state["count"].sum() > 256 and state["abs_sum"].max() > 0  # the K = 256 initial observations, then more
    plan = log.update(2)
    assert len(set(plan.pool_indices.tolist())) <= 4  # every client of a round stepped on the same seeds
    assert log.client_results(2) == [] and [r["clients"] for r in rows[1:]] == [3, 3, 3]


def test_fedkseed_pro_with_shared_seeds_shares_them():
    from fedseed.federation import build_federation

    fed = build_federation(config("strategy.name=fedkseed-pro"))
    plan = fed.strategy.configure_round(1, [0, 1, 2])
    steps = [[fed.strategy.step_index(plan, c, t) for t in range(4)] for c in (0, 1, 2)]
    assert steps[0] == steps[1] == steps[2] == list(fed.strategy.private_keys(plan, 4))
