"""The inline, processes and Ray backends run the same rounds: same final checksum for the same config, with the
heterogeneity knobs on; and an interrupted run resumes from its log to the uninterrupted result."""

import json

import pytest
from interrupted import run_cut_at_round

from fedseed import federation
from fedseed.cli import main
from fedseed.config import load_config
from fedseed.simulations.engine import simulate

SMOKE = "simulations/smoke.toml"
# Every knob that changes who reports and how much work they do, on a model small enough for three backends.
HETEROGENEOUS = ["run.rounds=4", "model.threads=1", "model.backend=eager", "data.eval_size=32",
                 "federation.num_clients=12", "federation.sample_fraction=0.5", "data.partition=iid",
                 "federation.local_steps_min=1", "federation.dropout=0.2", "federation.straggler_fraction=0.3",
                 "federation.straggler_slowdown=3.0", "federation.deadline_steps=9"]


@pytest.fixture(scope="module")
def inline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("inline")
    return simulate(load_config(SMOKE, HETEROGENEOUS), str(out), progress=False), out


def test_inline_run_exercises_every_knob(inline_run):
    summary, out = inline_run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][1:]
    assert summary["clients_per_round"] == 6 and all(r["planned"] == 6 for r in rows)
    assert sum(len(r["dropped"]) for r in rows) > sum(len(r["late"]) for r in rows) >= 1  # some drop out, some late
    assert all(r["clients"] == 6 - len(r["dropped"]) and set(r["late"]) <= set(r["dropped"]) for r in rows)
    reasons = {why.split(":")[0].split(" (")[0] for r in rows for why in r["why_dropped"].values()}
    assert reasons == {"dropped out", "late"}
    assert len({r["checksum"] for r in rows}) == 4
    assert summary["workers_checksums"] == []  # inline: the driver is the only model


@pytest.mark.federation
@pytest.mark.parametrize("backend", ["processes", "ray"])
def test_backend_gives_the_inline_checksum(backend, inline_run, tmp_path):
    expected, _ = inline_run
    cfg = load_config(SMOKE, [*HETEROGENEOUS, f"simulation.backend={backend}", "simulation.workers=2"])
    summary = simulate(cfg, str(tmp_path), progress=False)  # ray: a local instance started for this run
    assert summary["final_checksum"] == expected["final_checksum"]
    assert summary["workers_checksums"] == [expected["final_checksum"]] * 2  # every worker followed the state
    assert summary["bytes_total"] == expected["bytes_total"]
    assert len(summary["workers_peak_rss_mib"]) == 2


@pytest.mark.federation
def test_ray_cluster_without_a_cpu_per_actor_is_refused_before_anything_is_written(tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="warning")  # the "cluster"
    try:
        cfg = load_config(SMOKE, ["simulation.backend=ray", "simulation.workers=2"])
        with pytest.raises(RuntimeError, match="has 1 CPUs and simulation.workers = 2"):
            simulate(cfg, str(tmp_path / "run"), progress=False)
        assert ray.is_initialized()  # a cluster fedseed joined is left running
    finally:
        ray.shutdown()
    assert not (tmp_path / "run").exists()


@pytest.mark.federation
def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    """FedKSeed-Pro, so its importance statistics must come back from the log too."""
    overrides = ["run.rounds=4", "strategy.name=fedkseed-pro", "model.backend=eager", "model.threads=1"]
    whole = simulate(load_config(SMOKE, overrides), str(tmp_path / "whole"), progress=False)
    run_cut_at_round(monkeypatch, load_config(SMOKE, overrides), str(tmp_path / "cut"), 3)
    with pytest.raises(FileExistsError, match="--resume"):
        simulate(load_config(SMOKE, overrides), str(tmp_path / "cut"), progress=False)
    # resumed on another backend: its workers start from the base weights and catch up from the log
    on_workers = load_config(SMOKE, [*overrides, "simulation.backend=processes", "simulation.workers=2"])
    resumed = simulate(on_workers, str(tmp_path / "cut"), progress=False, resume=True)
    assert resumed["final_checksum"] == whole["final_checksum"]
    assert resumed["workers_checksums"] == [whole["final_checksum"]] * 2
    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2, 3, 4]


def test_resume_of_a_run_stopped_during_its_zero_shot_eval_starts_it_afresh(tmp_path, monkeypatch):
    overrides = ["run.rounds=2", "model.backend=eager", "model.threads=1"]
    whole = simulate(load_config(SMOKE, overrides), str(tmp_path / "whole"), progress=False)

    def stopped(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(federation.Federation, "evaluate", stopped)
    with pytest.raises(KeyboardInterrupt):
        simulate(load_config(SMOKE, overrides), str(tmp_path / "cut"), progress=False)
    monkeypatch.undo()
    assert (tmp_path / "cut" / "log.sqlite").exists() and not (tmp_path / "cut" / "metrics.jsonl").exists()
    resumed = simulate(load_config(SMOKE, overrides), str(tmp_path / "cut"), progress=False, resume=True)
    assert resumed["final_checksum"] == whole["final_checksum"]
    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2]


def test_resume_refuses_another_config(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["simulate", SMOKE, "--out", out, "--quiet", "--set", "run.rounds=1"]) == 0
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert main(["simulate", SMOKE, "--out", out, "--quiet", "--resume", "--set", "run.rounds=1",
                 "--set", "strategy.lr=0.5"]) == 2
    assert "another configuration (differs in strategy.lr)" in capsys.readouterr().err
    assert main(["simulate", SMOKE, "--out", out, "--quiet", "--resume", "--overwrite", "--set", "run.rounds=1"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before


def test_bad_simulation_settings_are_refused(capsys):
    for override, message in [("simulation.backend=spark", "simulation.backend' must be one of"),
                              ("federation.dropout=1.0", "federation.dropout' must be in [0, 1)"),
                              ("federation.local_steps_min=9", "local_steps_min' must be between"),
                              ("federation.sample_fraction=1.5", "sample_fraction' must be in [0, 1]")]:
        assert main(["simulate", SMOKE, "--quiet", "--set", override]) == 2
        assert message in capsys.readouterr().err


def test_participation_is_per_client_and_deterministic():
    from fedseed.config import FederationSection
    from fedseed.simulations.participation import is_straggler, participation

    fed = FederationSection(num_clients=1000, dropout=0.3, local_steps_min=2, straggler_fraction=0.25,
                            straggler_slowdown=4.0, deadline_steps=20)
    everyone = participation(fed, 7, 3, list(range(1000)), default_steps=10)
    again = participation(fed, 7, 3, list(range(1000)), default_steps=10)
    assert everyone == again
    some = participation(fed, 7, 3, list(range(0, 1000, 7)), default_steps=10)
    assert some.steps == {c: n for c, n in everyone.steps.items() if c % 7 == 0}  # a draw ignores who else is in
    assert abs(len(everyone.dropped) / 1000 - 0.3) < 0.05
    assert set(everyone.steps.values()) == set(range(2, 11))
    stragglers = {c for c in range(1000) if is_straggler(fed, 7, c)}
    assert abs(len(stragglers) / 1000 - 0.25) < 0.05
    assert set(everyone.late) <= stragglers and all(c not in stragglers for c in everyone.steps if c in everyone.late)
    assert all(n * 4 <= 20 for c, n in everyone.steps.items() if c in stragglers)  # late = over the deadline
    other_round = participation(fed, 7, 4, list(range(1000)), default_steps=10)
    assert other_round.dropped != everyone.dropped


def test_tensorboard_scalars_and_progress_line(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config(SMOKE, ["run.rounds=2", "eval.every=2", "data.eval_size=32", "simulation.tensorboard=true",
                              "model.backend=eager"])
    simulate(cfg, str(tmp_path), progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("round ")]
    assert len(lines) == 2 and lines[1].startswith("round 2/2  clients 3  train_loss ")
    assert "eval_accuracy" in lines[1] and "(total " in lines[1] and "ETA 0m00s" in lines[1]
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train_loss")] == [1, 2]
    assert [e.step for e in events.Scalars("eval_accuracy")] == [2]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert events.Scalars("total_bytes")[-1].value == sum(r["bytes_up"] + r["bytes_down"] for r in rows)


def test_peak_memory_is_the_runs_own(tmp_path):
    import numpy as np

    from fedseed.simulations.backends.base import peak_rss_mib

    big = np.ones(600 * 2**20 // 8)  # 600 MiB touched, then freed: an earlier run's peak
    del big
    before = peak_rss_mib()
    summary = simulate(load_config(SMOKE, ["run.rounds=1", "model.backend=eager"]), str(tmp_path), progress=False)
    assert summary["peak_rss_mib"] < before - 300
