"""Secure aggregation over real sockets: a coordinator and ten edge clients on 127.0.0.1 (the clients in threads of
this process). Every request the coordinator parses and every reply a curious client receives (SyncLog of the
whole history included) is recorded, and none holds another client's individual result: its scalars, its
quantized vector, its sample count or its train loss. Three of the ten clients drop in round 1 after submitting,
and the round still applies the exact sum of all ten; every party ends bit-identical."""

from __future__ import annotations

import time

import numpy as np
import pytest
from inprocess import BUILDING, ServerThread, run_in_threads

from fedseed.client.config import load_client_config
from fedseed.client.edge import EdgeClient
from fedseed.client.private_submit import PrivateRoundRefused
from fedseed.roundlog import RoundLog
from fedseed.secagg import field as fld
from fedseed.secagg.protocol import SecureSum
from fedseed.server import service
from fedseed.simulations.loopback import write_configs
from fedseed.v1 import coordinator_pb2 as pb

pytestmark = pytest.mark.federation
CONFIG = "simulations/smoke.toml"
SETTINGS = ["run.rounds=2", "federation.num_clients=10", "federation.clients_per_round=10", "model.backend=eager",
            "model.threads=1", "eval.every=2", "server.min_clients=10", "server.round_deadline_s=120",
            "server.linger_s=1", "strategy.shared_seeds=true", "privacy.secure_aggregation=true",
            "privacy.clip=5.0", "privacy.stage_timeout_s=8"]
CURIOUS, DROPPERS = 0, (3, 5, 8)


class RecordingEdge(EdgeClient):
    """Keeps what this client computed in the clear (to look for it elsewhere) and, when curious, every reply."""

    def __init__(self, target: str, sec, heard: list | None = None) -> None:  # noqa: ANN001
        super().__init__(target, sec)
        self.heard, self.plain, self.vectors = heard, {}, {}

    def join(self) -> None:
        with BUILDING:
            super().join()
        strategy, private = self.fed.strategy, self.private_run()
        local_work, client_vector = strategy.local_work, private.client_vector

        def recorded_work(ctx, plan, client):  # noqa: ANN001, ANN202
            result = local_work(ctx, plan, client)
            self.plain[plan.round] = result
            return result

        def recorded_vector(plan, result, rng):  # noqa: ANN001, ANN202
            vector = client_vector(plan, result, rng)
            self.vectors[plan.round] = vector
            return vector

        strategy.local_work, private.client_vector = recorded_work, recorded_vector
        if self.heard is not None:
            send = self.session._send

            def recorded_send(method, request, timeout):  # noqa: ANN001, ANN202
                reply = send(method, request, timeout)
                for r in reply if isinstance(reply, list) else [reply]:
                    self.heard.append(r)
                return reply

            self.session._send = recorded_send

    def _stage(self, task: pb.RoundTask, attempt: int, **message) -> pb.SecAggReply:  # noqa: ANN003
        if task.round == 1 and self.index in DROPPERS and "await_survivors" in message:
            raise PrivateRoundRefused("left after submitting (test)")
        return super()._stage(task, attempt, **message)

    def _finish(self, fin: pb.Finished) -> dict:
        if self.heard is not None:  # everything the log can tell a client, round by round
            list(self.session.stream("SyncLog", pb.SyncRequest(from_round=0, merged=False)))
        return super()._finish(fin)


def test_no_party_sees_another_clients_result(tmp_path, monkeypatch):
    received: list[tuple[str, bytes]] = []
    parse = service._parser

    def recording_parser(cls):  # noqa: ANN001, ANN202
        inner = parse(cls)

        def parse_and_record(raw: bytes):  # noqa: ANN202
            received.append((cls.__name__, raw))
            return inner(raw)
        return parse_and_record

    monkeypatch.setattr(service, "_parser", recording_parser)
    _, server_toml, client_tomls = write_configs(CONFIG, SETTINGS, tmp_path, 0)
    server = ServerThread(str(server_toml), []).start()
    target = f"127.0.0.1:{server.port}"
    heard: list = []  # every reply message the curious client received
    clients = [RecordingEdge(target, load_client_config(str(t)), heard if i == CURIOUS else None)
               for i, t in enumerate(client_tomls)]
    errors = run_in_threads(clients, server)
    assert not errors, errors
    coord = server.coord
    assert coord.last == 2

    # every party bit-identical
    final = coord.records[-1].checksum
    assert [c.checksum for c in clients] == [final] * 10

    # round 1: all ten vectors are in the sum although three clients left before unmasking
    record = coord.records[1]
    assert record.reported == list(range(10)) and record.train_loss is None
    statuses = {c.index: c.rows[0].status for c in clients}
    assert all(statuses[i] == "accepted" for i in range(10) if i not in DROPPERS)
    assert all(statuses[i] == "refused: left after submitting (test)" for i in DROPPERS)
    log = RoundLog.open_existing(str(tmp_path / "server"))
    try:
        applied = log.update(1)
        assert log.client_results(1) == [] and log.client_results(2) == []  # nothing individual is logged
    finally:
        log.close()
    private, plan = coord.machine.private, coord.strategy.configure_round(1, list(range(10)))
    total = sum(fld.from_field(c.vectors[1]) for c in clients)
    expected = coord.strategy.update_from(plan, private.combined(plan, SecureSum(list(range(10)), total), None))
    assert np.array_equal(applied.pool_indices, expected.pool_indices)
    assert np.array_equal(applied.coefs, expected.coefs)

    # nothing individual in what the coordinator received or the curious client heard
    updates = [pb.UpdateRequest.FromString(raw) for name, raw in received if name == "UpdateRequest"]
    assert len(updates) == 20
    assert all(u.num_samples == 1 and np.isnan(u.train_loss) and u.skipped_steps == 0 for u in updates)
    to_coordinator = b"".join(raw for _, raw in received)
    to_curious = b"".join(m.SerializeToString() for m in heard)
    assert to_curious  # it heard tasks, rosters, inboxes, survivors and the log
    for c in clients:
        for r in (1, 2):
            secrets = [c.plain[r].payload, fld.pack(c.vectors[r]), np.float32(c.plain[r].train_loss).tobytes()]
            assert not any(s in to_coordinator for s in secrets), f"the coordinator saw client {c.index}'s round {r}"
            if c.index != CURIOUS:
                assert not any(s in to_curious for s in secrets), f"client {CURIOUS} saw client {c.index}'s round {r}"
    logged = [m for m in heard if isinstance(m, pb.GlobalUpdate)]
    assert {m.round for m in logged} == {1, 2}  # the SyncLog of the whole history
    for m in heard:  # no reply relays results: the global updates come as coefficients
        ups = m.updates if isinstance(m, pb.Task) else [m] if isinstance(m, pb.GlobalUpdate) else []
        assert all(not u.results and not u.own_result_omitted for u in ups)


class SlowEdge(EdgeClient):
    """Local work that outlasts the key and share stages' timeout, as a real model's does."""

    def join(self) -> None:
        with BUILDING:
            super().join()
        local_work = self.fed.strategy.local_work

        def slow_work(ctx, plan, client):  # noqa: ANN001, ANN202
            time.sleep(2.5)
            return local_work(ctx, plan, client)

        self.fed.strategy.local_work = slow_work


def test_local_work_longer_than_a_stage_keeps_the_round(tmp_path):
    settings = ["run.rounds=1", "federation.num_clients=4", "federation.clients_per_round=4", "model.backend=eager",
                "model.threads=1", "eval.every=1", "server.min_clients=4", "server.round_deadline_s=60",
                "server.linger_s=1", "strategy.shared_seeds=true", "privacy.secure_aggregation=true",
                "privacy.clip=5.0", "privacy.stage_timeout_s=1"]
    _, server_toml, client_tomls = write_configs(CONFIG, settings, tmp_path, 0)
    server = ServerThread(str(server_toml), []).start()
    clients = [SlowEdge(f"127.0.0.1:{server.port}", load_client_config(str(t))) for t in client_tomls]
    errors = run_in_threads(clients, server)
    assert not errors, errors
    record = server.coord.records[1]
    assert record.attempts == 1 and record.reported == [0, 1, 2, 3]
    assert [c.rows[0].status for c in clients] == ["accepted"] * 4
