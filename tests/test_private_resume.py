"""A private federation of real processes: the coordinator killed -9 mid-run resumes the same privacy budget
(the accountant's state is in the round log), and a run configured past its budget stops at the last round
that fits, saying so; its clients end with it."""

from __future__ import annotations

import json
import os
import signal

import pytest
from federation import LiveFederation

from fedseed.config import load_config
from fedseed.simulations.engine import simulate

pytestmark = pytest.mark.federation
CONFIG = "simulations/smoke.toml"
BASE = ["federation.num_clients=4", "federation.clients_per_round=4", "model.backend=eager", "model.threads=1",
        "eval.every=2", "strategy.shared_seeds=true", "privacy.clip=2.0", "privacy.stage_timeout_s=20"]
PRIVATE = [*BASE, "privacy.secure_aggregation=true", "privacy.dp=distributed"]
CENTRAL = [*BASE, "privacy.dp=central"]  # no masks: the coordinator checks each quantized vector and adds the noise
SERVER = ["server.min_clients=4", "server.round_deadline_s=60", "server.linger_s=1"]


def epsilons(rows_path) -> list[float]:
    return [json.loads(line)["epsilon"] for line in rows_path.read_text().splitlines()[1:]]


def test_a_killed_coordinator_resumes_the_same_budget(tmp_path):
    settings = [*PRIVATE, "run.rounds=4", "privacy.epsilon=6.0"]
    simulate(load_config(CONFIG, settings), str(tmp_path / "whole"), progress=False)
    fed = LiveFederation(CONFIG, settings + SERVER, tmp_path / "fed")
    try:
        fed.start_server()
        for i in range(fed.n):
            fed.start_client(i)
        fed.wait_until(lambda: fed.last_round() >= 2, what="round 2")
        os.kill(fed.server.pid, signal.SIGKILL)
        fed.server.wait()
        fed.start_server()
        summary = fed.finish()
    finally:
        fed.stop()
    assert summary["rounds"] == 4
    assert epsilons(tmp_path / "fed" / "server" / "metrics.jsonl") == epsilons(tmp_path / "whole" / "metrics.jsonl")
    checksums = {fed.client_summary(i)["final_checksum"] for i in range(fed.n)}
    assert checksums == {summary["final_checksum"]}


@pytest.mark.parametrize("mode", [PRIVATE, CENTRAL], ids=["secagg-distributed", "central"])
def test_a_run_past_its_budget_stops_at_the_last_round_that_fits(tmp_path, mode):
    # every client takes part in every round; sigma 2 spends epsilon 2.43 in one round and 3.65 in two
    settings = [*mode, "run.rounds=3", "privacy.epsilon=3.0", "privacy.noise_multiplier=2.0"]
    fed = LiveFederation(CONFIG, settings + SERVER, tmp_path)
    try:
        fed.start_server()
        for i in range(fed.n):
            fed.start_client(i)
        summary = fed.finish()
    finally:
        fed.stop()
    assert summary["rounds"] == 1 and summary["epsilon"] <= 3.0
    assert summary["stopped"].startswith("privacy budget: round 2 would be client")
    assert "the run stops after round 1" in (tmp_path / "server0.log").read_text()
    assert {fed.client_summary(i)["final_round"] for i in range(fed.n)} == {1}
