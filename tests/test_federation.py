"""A real coordinator and real client processes over gRPC on 127.0.0.1 (tiny model, real data): the final
state equals the one-process simulation's; a coordinator killed with -9 resumes from SQLite; a killed client
is dropped at the deadline and later catches up; every networked strategy runs."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest
from federation import LiveFederation

from fedseed.client.config import load_client_config
from fedseed.config import dump_toml, load_config, load_document
from fedseed.simulations.engine import simulate
from fedseed.simulations.loopback import run_loopback, write_configs

pytestmark = pytest.mark.federation

CONFIG = "simulations/loopback.toml"


def simulated_checksum(tmp_path, overrides, config=CONFIG):
    return simulate(load_config(config, overrides), str(tmp_path / "sim"), progress=False)["final_checksum"]


def base_strategy_config(tmp_path) -> str:
    """loopback.toml with its strategy table cut to the keys every strategy shares."""
    doc = load_document(CONFIG)
    doc["strategy"] = {k: v for k, v in doc["strategy"].items() if k in ("name", "eps", "codec", "lr")}
    path = tmp_path / "loopback.toml"
    path.write_text(dump_toml(doc))
    return str(path)


def test_readme_loopback_command_from_a_fresh_tree_equals_one_process_simulation(tmp_path):
    """The README's commands exactly as written, from a folder holding the repository's relative paths."""
    (tmp_path / "simulations").mkdir()
    shutil.copy(CONFIG, tmp_path / CONFIG)
    cli = [sys.executable, "-m", "fedseed.cli"]
    run = subprocess.run([*cli, "simulate", CONFIG, "--loopback"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)
    assert summary["clients_agree"] and summary["rounds"] == 4
    assert summary["final_checksum"] == simulated_checksum(tmp_path, [])
    assert 0 < summary["bytes_per_client_round"] < 1000  # 4 fp32 scalars a step: seeds never travel
    table = subprocess.run([*cli, "inspect", "runs/loopback/server"], cwd=tmp_path, capture_output=True, text=True)
    assert table.returncode == 0 and summary["final_checksum"] in table.stdout and "B/client" in table.stdout


def test_loopback_clients_keep_the_configs_client_table(tmp_path):
    doc = load_document(CONFIG)
    doc["client"] = {"wait_ms": 5000, "heartbeat_s": 3.0}
    (tmp_path / "run.toml").write_text(dump_toml(doc))
    _, _, client_tomls = write_configs(str(tmp_path / "run.toml"), [], tmp_path / "net")
    sec = load_client_config(str(client_tomls[2]))
    assert (sec.id, sec.wait_ms, sec.heartbeat_s) == ("c2", 5000, 3.0)
    assert pathlib.Path(sec.key).resolve() == (tmp_path / "net" / "keys" / "c2.ed25519").resolve()


def test_log_only_coordinator_learns_checksums_from_clients(tmp_path):
    overrides = ["run.rounds=2", "server.hold_model=false"]
    summary = run_loopback(CONFIG, overrides, str(tmp_path / "net"), quiet=True)
    assert summary["clients_agree"] and summary["final"] == {}  # no model: no evaluation
    assert summary["final_checksum"] == simulated_checksum(tmp_path, overrides)


def test_coordinator_killed_mid_round_resumes_from_sqlite(tmp_path):
    overrides = ["run.rounds=4", "strategy.local_steps=8"]
    fed = LiveFederation(CONFIG, overrides, tmp_path / "net")
    try:
        fed.start_server()
        for i in range(fed.n):
            fed.start_client(i)
        # kill while round 2 is open and some, not all, of its updates are in
        fed.wait_until(lambda: fed.last_round() >= 1 and fed.query("SELECT COUNT(*) FROM pending WHERE round = 2")
                       [0][0] >= 1, what="a pending update of round 2")
        os.kill(fed.server.pid, signal.SIGKILL)
        fed.server.wait()
        pending = fed.query("SELECT client FROM pending")
        assert 1 <= len(pending) and fed.last_round() == 1
        fed.start_server()
        summary = fed.finish()
    finally:
        fed.stop()
    assert summary["final_checksum"] == simulated_checksum(tmp_path, overrides)
    assert all(fed.client_summary(i)["final_checksum"] == summary["final_checksum"] for i in range(fed.n))


def test_killed_client_is_dropped_at_deadline_then_catches_up(tmp_path):
    overrides = ["run.rounds=6", "federation.clients_per_round=4", "strategy.local_steps=8",
                 "server.min_clients=3", "server.quorum=3", "server.round_deadline_s=12",
                 "server.heartbeat_timeout_s=2", "client.heartbeat_s=0.5"]
    fed = LiveFederation(CONFIG, overrides, tmp_path / "net")
    try:
        fed.start_server()
        for i in range(fed.n):
            fed.start_client(i)
        fed.wait_until(lambda: fed.last_round() >= 1, what="round 1")
        os.kill(fed.clients[3].pid, signal.SIGKILL)  # mid-round 2: it has not submitted yet
        fed.clients[3].wait()
        del fed.clients[3]
        fed.wait_until(lambda: fed.last_round() >= 3, what="round 3 without client 3")
        fed.start_client(3)
        summary = fed.finish()
        rows = {r[0]: r[1] for r in fed.query("SELECT round, metrics FROM rounds")}
    finally:
        fed.stop()
    m2 = json.loads(rows[2])
    assert m2["dropped"] == [3] and m2["clients"] == 3 and m2["round_s"] >= 12  # closed at the deadline
    back = fed.client_summary(3)
    assert back["final_checksum"] == summary["final_checksum"]
    assert all(fed.client_summary(i)["final_checksum"] == summary["final_checksum"] for i in range(3))


STRATEGIES = {
    "fedkseed-pro": ["strategy.name=fedkseed-pro", "strategy.codec=onebyte"],
    "ferret": ["strategy.name=ferret", "strategy.local_steps=2", "strategy.num_bases=64", "strategy.lr=0.05",
               "strategy.adaptive_k=true", "strategy.codec=fp16"],
}


@pytest.mark.parametrize("case", sorted(STRATEGIES))
def test_strategy_over_grpc_equals_simulation(case, tmp_path):
    overrides, config = ["run.rounds=3", *STRATEGIES[case]], base_strategy_config(tmp_path)
    summary = run_loopback(config, overrides, str(tmp_path / "net"), quiet=True)
    assert summary["clients_agree"]
    assert summary["final_checksum"] == simulated_checksum(tmp_path, overrides, config)


def test_onebyte_participants_join_and_leave_mid_run(tmp_path):
    # participant 3 joins at step 3 (its process starts only then); participant 0 leaves at step 4 (killed)
    overrides = ["run.rounds=5", "strategy.name=onebyte", "strategy.samples_per_step=2", "strategy.lr=1e-3",
                 "strategy.codec=onebyte", "strategy.join=[[3, 3]]", "strategy.leave=[[0, 4]]",
                 "server.min_clients=3", "server.round_deadline_s=120", "server.linger_s=2"]
    config = base_strategy_config(tmp_path)
    fed = LiveFederation(config, overrides, tmp_path / "net")
    try:
        fed.start_server()
        for i in range(3):
            fed.start_client(i)
        fed.wait_until(lambda: fed.last_round() >= 2, what="step 2")
        fed.start_client(3)
        fed.wait_until(lambda: fed.last_round() >= 3, what="step 3")
        os.kill(fed.clients[0].pid, signal.SIGKILL)
        fed.clients[0].wait()
        del fed.clients[0]
        summary = fed.finish()
        members = {r: sorted(c for (c,) in fed.query(f"SELECT client FROM client_updates WHERE round = {r}"))
                   for r in range(1, 6)}
    finally:
        fed.stop()
    assert members == {1: [0, 1, 2], 2: [0, 1, 2], 3: [0, 1, 2, 3], 4: [1, 2, 3], 5: [1, 2, 3]}
    assert summary["final_checksum"] == simulated_checksum(tmp_path, overrides, config)
    assert fed.client_summary(3)["final_checksum"] == summary["final_checksum"]
