"""The run's bounds on contributions (fedseed.robust) and the divergence guard's exact rollback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from states import held_integers

from fedseed.attacks import corrupt
from fedseed.config import ConfigError, load_config
from fedseed.federation import build_federation
from fedseed.robust import (
    UNBOUNDED,
    Contribution,
    RobustSection,
    client_weights,
    combine,
    outliers,
    scalar_bound,
)
from fedseed.round_machine import RoundMachine
from fedseed.roundlog import RoundLog

SMOKE = "simulations/smoke.toml"
OFF = ["robust.weighting=samples", "robust.clip_factor=0", "robust.norm_factor=0"]  # the bounds off, the guard on
TINY = ["run.rounds=2", "federation.num_clients=4", "federation.clients_per_round=4", "model.backend=eager",
        "model.threads=1"]


def contrib(client: int, keys: list[int], values: list[float], n: int = 10) -> Contribution:
    return Contribution(client, np.asarray(keys, np.int64), np.asarray(values, np.float64), n)


def test_weights_a_client_cannot_inflate():
    claims = [10, 20, 30, 1 << 40]
    assert np.allclose(client_weights(claims, RobustSection()), 0.25)  # equal, the default
    capped = client_weights(claims, RobustSection(weighting="capped"))
    assert capped[3] == pytest.approx(20 / (10 + 20 + 20 + 20))  # every claim at most the lower median (20)
    assert client_weights(claims, RobustSection(weighting="samples"))[3] > 0.999999  # the papers' rule: trusted
    with pytest.raises(ValueError, match="at least one sample"):
        client_weights([10, 0], RobustSection())


def test_norm_bound_scales_only_the_client_past_it():
    honest = [contrib(c, [c], [1.0 + 0.1 * c]) for c in range(3)]
    big = contrib(3, [3, 4], [300.0, 400.0])
    out = combine([*honest, big], RobustSection(norm_factor=1.5, clip_factor=0))  # the norm bound alone
    median = 1.1  # the lower median of the four norms: the big one cannot move it
    assert set(out.scales) == {3} and out.scales[3] == pytest.approx(1.5 * median / 500.0)
    v = dict(zip(out.keys.tolist(), out.values.tolist()))
    assert v[0] == pytest.approx(0.25) and np.hypot(v[3], v[4]) == pytest.approx(0.25 * 1.5 * median)
    assert combine([*honest, big], UNBOUNDED).values.max() > 70  # unbounded: the big client takes the round


def test_clips_absolute_and_relative_to_the_round():
    contribs = [contrib(0, [0, 1], [0.5, -2.0]), contrib(1, [2, 3], [1.0, 50.0])]
    out = combine(contribs, RobustSection(clip=1.0, norm_factor=0))
    assert np.abs(out.values).max() <= 0.5  # every scalar within 1, then the mean of two clients
    relative = combine(contribs, RobustSection(clip_factor=2.0, norm_factor=0))
    assert relative.bound == pytest.approx(2.0 * 1.0)  # the lower median of 0.5, 1, 2 and 50
    with pytest.raises(ValueError, match="non-finite"):
        combine([contrib(0, [0], [float("nan")])], RobustSection())


def test_default_clip_bounds_one_wild_scalar_and_a_private_run_resolves_it_off():
    honest = [contrib(c, [2 * c, 2 * c + 1], [1.0 + 0.1 * c, -0.8]) for c in range(3)]
    wild = contrib(3, [6, 7], [1.2, 1e4])  # one probe across a cliff
    out = combine([*honest, wild], RobustSection())
    assert out.bound == pytest.approx(10 * 1.0) and np.abs(out.values).max() <= 10 / 4  # 10 x the lower median
    assert load_config(SMOKE).robust.clip_factor == 10.0
    private = load_config("simulations/private.toml")
    assert private.privacy.private and private.robust.clip_factor == 0.0  # privacy.clip bounds it instead
    with pytest.raises(ConfigError, match="robust.clip_factor"):
        load_config("simulations/private.toml", ["robust.clip_factor=10"])


def test_coordinate_wise_rules_ignore_a_sign_flipper_on_shared_keys():
    honest = [contrib(c, [7, 9], [1.0 + 0.1 * c, -2.0]) for c in range(3)]
    flipper = contrib(3, [7, 9], [-40.0, 80.0])
    median = combine([*honest, flipper], RobustSection(rule="median", norm_factor=0))
    assert median.values.tolist() == [pytest.approx(1.05), pytest.approx(-2.0)]
    trimmed = combine([*honest, flipper], RobustSection(rule="trimmed_mean", trim_fraction=0.25, norm_factor=0))
    assert trimmed.values.tolist() == [pytest.approx(1.05), pytest.approx(-2.0)]
    mean = combine([*honest, flipper], RobustSection(norm_factor=0))
    assert mean.values[0] < 0 < mean.values[1]  # the mean is the flipper's


def test_outliers_are_named_with_their_norm():
    contribs = [contrib(c, [c], [1.0]) for c in range(4)] + [contrib(9, [9], [30.0])]
    why = outliers(contribs, RobustSection(outlier_factor=3.0))
    assert list(why) == [9] and "exceeds 3.0 x the round's median norm" in why[9]
    assert outliers(contribs, RobustSection()) == {}  # off by default


def test_coordinate_wise_rules_need_shared_seeds():
    with pytest.raises(ConfigError, match="robust.rule': median is coordinate-wise.*shared_seeds"):
        load_config(SMOKE, ["robust.rule=median"])
    cfg = load_config(SMOKE, ["robust.rule=median", "strategy.shared_seeds=true"])
    assert cfg.robust.rule == "median"
    for bad, match in [("robust.weighting=trusted", "must be one of equal, capped, samples"),
                       ("robust.norm_factor=-1", "must be a finite number >= 0"),
                       ("robust.divergence_factor=0.5", "must be > 1"),
                       ("robust.trim_fraction=0.5", r"must be in \[0, 0.5\)")]:
        with pytest.raises(ConfigError, match=match):
            load_config(SMOKE, [bad])


def test_shared_seeds_put_every_client_on_the_same_pool_indices():
    fed = build_federation(load_config(SMOKE, TINY + ["strategy.shared_seeds=true"]))
    plan = fed.strategy.configure_round(1, [0, 1, 2, 3])
    keys = {tuple(fed.strategy.step_index(plan, c, t) for t in range(4)) for c in plan.clients}
    assert len(keys) == 1
    own = build_federation(load_config(SMOKE, TINY))
    assert len({tuple(own.strategy.step_index(plan, c, t) for t in range(4)) for c in plan.clients}) == 4


def machine_round(tmp_path, overrides: list[str]):
    """One round of four honest results but one: the inflated, max-magnitude attacker (fedseed.attacks)."""
    cfg = load_config(SMOKE, TINY + overrides)
    fed = build_federation(cfg)
    log = RoundLog(tmp_path / "log.sqlite")
    machine = RoundMachine(cfg, fed.strategy, log, fed.state, fed.evaluate, fed.guard_loss)
    plan = machine.draw(1, [0, 1, 2, 3])
    results = []
    for c in plan.clients:
        fed.state.restore()
        results.append(fed.strategy.local_work(fed.context(1, c), plan, c))
    fed.state.restore()
    # the compact state's int32 refuses a weight moved by 2 or more: the attacker's 4 steps reach 1 in all
    reach = 1.0 if fed.state.format == "wide" else 0.25
    results[0] = corrupt(results[0], "inflate", fed.strategy, plan.lr, reach)
    return fed, log, machine, plan, results


def test_a_diverging_round_is_rolled_back_exactly(tmp_path):
    fed, log, machine, plan, results = machine_round(tmp_path, OFF)
    before, bound = fed.state.checksum(), machine.delta_bound
    delta = held_integers(fed.state)
    closed = machine.close(plan, results)
    assert closed.rolled_back and "robust.divergence_factor 1.5" in closed.flagged
    assert closed.checksum == before and torch.equal(held_integers(fed.state), delta)  # every integer as it was
    assert closed.update.seeds.size == 0 and closed.results == [] and machine.delta_bound == bound
    assert set(closed.refused) == {0, 1, 2, 3} and "rolled back" in closed.refused[0]
    record = machine.record(closed, 1.0)
    assert record.rolled_back and record.flagged == closed.flagged and record.reported == []
    machine.commit(closed, record)
    assert log.update(1).seeds.size == 0 and log.checksum(1) == before  # a replay applies nothing
    # the next round is judged against the state it starts from, which is the one before the rollback
    assert machine.guard.reference == pytest.approx(fed.guard_loss())
    log.close()


def test_the_compact_state_refuses_an_update_past_int32_and_keeps_the_round(tmp_path):
    fed, log, machine, plan, results = machine_round(tmp_path, OFF)
    assert fed.state.format == "compact"
    results[0] = corrupt(results[0], "inflate", fed.strategy, plan.lr)  # steps of 0.99: past int32's room
    closed = machine.close(plan, results)
    assert "past its bound" in closed.refused[0] and len(closed.results) == 3 and not closed.flagged
    log.close()


def test_a_flagged_round_is_kept_when_the_policy_says_flag(tmp_path):
    fed, log, machine, plan, results = machine_round(
        tmp_path, OFF + ["robust.on_divergence=flag"])
    before = fed.state.checksum()
    closed = machine.close(plan, results)
    assert closed.flagged and not closed.rolled_back and closed.checksum != before and len(closed.results) == 4
    log.close()


def test_the_default_bounds_keep_the_same_round_from_diverging(tmp_path):
    fed, log, machine, plan, results = machine_round(tmp_path, [])
    closed = machine.close(plan, results)
    assert not closed.flagged and len(closed.results) == 4 and closed.update.seeds.size > 0
    log.close()


def test_a_scalar_clip_at_the_median_is_moved_by_an_attacker_and_clips_honest_tails(tmp_path):
    """Why the default bound is on client norms, not on each scalar relative to the round's median |scalar|:
    honest zeroth-order scalars are heavy-tailed, and an attacker's scalars raise that bound for every client."""
    fed, log, machine, plan, results = machine_round(tmp_path, [])
    log.close()
    honest = fed.strategy.contributions(plan, results[1:])
    attacked = fed.strategy.contributions(plan, results)
    mags = np.abs(np.concatenate([c.values for c in honest]))
    cfg = RobustSection(clip_factor=3.0)
    tail = mags.max() / np.median(mags)
    moved = scalar_bound(attacked, cfg) / scalar_bound(honest, cfg)
    print(f"honest max/median |g| {tail:.1f}; the clip_factor bound x{moved:.2f} with one attacker of four")
    assert tail > 3.0 and moved > 1.2
