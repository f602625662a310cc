"""A result that cannot be aggregated never wedges a round, over real sockets and across kill -9: one client's
steps that land on one pool seed, each scalar within the per-scalar bound, are refused at submission with a
status naming the seed; such a result already in the log (accepted by an older coordinator) is dropped when the
round closes, with the reason recorded, and the run finishes with every client on the coordinator's checksum."""

import json
import os
import signal
import threading
import time

import grpc
import numpy as np
import pytest
from federation import LiveFederation
from inprocess import Caller

from fedseed.auth import load_private_key
from fedseed.config import load_config
from fedseed.federation import build_federation
from fedseed.replay import materialize_round
from fedseed.rng_spec import SPEC_VERSION
from fedseed.round_machine import ResultRefused, RoundMachine
from fedseed.roundlog import RoundLog
from fedseed.strategies.base import ClientResult
from fedseed.transport import method_path
from fedseed.v1 import coordinator_pb2 as pb

CONFIG = "simulations/loopback.toml"
# two pool seeds and four steps a round: some two steps of every client share a seed
OVERRIDES = ["run.rounds=3", "federation.num_clients=3", "federation.clients_per_round=3", "strategy.num_seeds=2",
             "server.min_clients=3", "server.quorum=2", "server.round_deadline_s=15", "server.linger_s=2"]
UNBOUNDED = ["robust.weighting=samples", "robust.clip_factor=0", "robust.norm_factor=0", "robust.divergence_factor=0"]
BAD = 999.0  # lr 1e-3: every coefficient 0.999 alone, two or more of them on one seed exceed 1


def submit(call: Caller, req: pb.UpdateRequest) -> tuple[grpc.StatusCode, str]:
    try:
        signed = call.signed("SubmitUpdate", req, cid="c2")
        call.channel.unary_unary(method_path("SubmitUpdate"))(signed.body, timeout=10, metadata=signed.metadata)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def round_task(call: Caller) -> pb.RoundTask:
    end = time.monotonic() + 120
    while time.monotonic() < end:
        req = call.signed("FetchTask", pb.FetchTaskRequest(applied_round=0, wait_ms=5000), cid="c2")
        task = pb.Task.FromString(call.channel.unary_unary(method_path("FetchTask"))(req.body, timeout=30,
                                                                                       metadata=req.metadata))
        if task.WhichOneof("kind") == "round":
            return task.round
    raise AssertionError("client 2 was never given round 1")


@pytest.mark.federation
def test_unaggregable_result_refused_and_dropped_at_close_across_kill9(tmp_path):
    fed = LiveFederation(CONFIG, OVERRIDES + UNBOUNDED, tmp_path / "net")  # the bounds would clip it, not drop it
    beating = threading.Event()
    try:
        fed.start_server()
        call = Caller(fed.port, {"c2": load_private_key(fed.out / "keys" / "c2.ed25519")})
        call.hello("c2")
        fingerprint = json.loads(fed.query("SELECT value FROM meta WHERE key = 'fingerprint'")[0][0])
        join = pb.JoinRequest(layout=pb.LayoutFingerprint(spec_version=SPEC_VERSION, fingerprint=fingerprint))
        assert call.send("Join", call.signed("Join", join, cid="c2")) == grpc.StatusCode.OK
        fed.start_client(0)
        fed.start_client(1)
        task = round_task(call)
        bad = pb.UpdateRequest(round=1, payload=np.full(4, BAD, "<f4").tobytes(), num_samples=10,
                               start_checksum=task.state_checksum)
        code, details = submit(call, bad)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "beyond the bound 1.0" in details and "seed" in details

        def heartbeats() -> None:  # client 2 stays online (min_clients = 3) but never submits again
            while not beating.wait(1.0):
                call.send("Heartbeat", call.signed("Heartbeat", pb.HeartbeatRequest(), cid="c2"))

        threading.Thread(target=heartbeats, daemon=True).start()
        fed.wait_until(lambda: fed.query("SELECT COUNT(*) FROM pending WHERE round = 1")[0][0] == 2,
                       what="both honest results of round 1")
        accepted = sorted(c for (c,) in fed.query("SELECT client FROM pending WHERE round = 1"))
        os.kill(fed.server.pid, signal.SIGKILL)
        fed.server.wait()
        assert fed.last_round() == 0
        # as a coordinator that checked only each scalar would have accepted it, with a weight that dominates
        with RoundLog(fed.out / "server" / "log.sqlite") as log:
            log.db.execute("INSERT INTO pending VALUES (1, 2, ?, ?, NULL, 0)", (1 << 30, bad.payload))
            log.db.commit()
        fed.start_server()
        summary = fed.finish()
        rows = {r: json.loads(m) for r, m in fed.query("SELECT round, metrics FROM rounds")}
        kept = {r: sorted(c for (c,) in fed.query(f"SELECT client FROM client_updates WHERE round = {r}"))
                for r in rows}
    finally:
        beating.set()
        fed.stop()
    assert summary["rounds"] == 3 and kept[1] == accepted == [0, 1]
    assert rows[1]["why_dropped"]["2"].startswith("refused at close") and "beyond the bound" in \
        rows[1]["why_dropped"]["2"]
    assert rows[2]["why_dropped"] == {"2": "no result by the deadline"}
    for i in (0, 1):
        assert fed.client_summary(i)["final_checksum"] == summary["final_checksum"]
    with RoundLog.open_existing(fed.out / "server") as log:
        for r in range(1, 4):
            _, state = materialize_round(log, r, backend="eager")
            assert state.checksum() == log.checksum(r)
        assert log.dropped(1)[2].startswith("refused at close")
    server_log = (fed.out / "server1.log").read_text()
    assert "reopened round 1" in server_log and "client 2's result dropped" in server_log


def test_close_keeps_every_result_the_round_can_aggregate(tmp_path):
    cfg = load_config(CONFIG, OVERRIDES[:4] + UNBOUNDED)  # the state's bounds alone, as a run without [robust]
    fed = build_federation(cfg)
    with RoundLog(tmp_path / "log.sqlite") as log:
        machine = RoundMachine(cfg, fed.strategy, log, fed.state, fed.evaluate)
        plan = machine.draw(1, [0, 1, 2])
        good = [ClientResult(1, c, np.full(4, 0.5, "<f4").tobytes(), 10, 0.7) for c in (0, 2)]
        bad = ClientResult(1, 1, np.full(4, BAD, "<f4").tobytes(), 1 << 30, 0.7)  # its weight dominates
        with pytest.raises(ResultRefused, match="beyond the bound 1.0"):
            machine.check(plan, bad)
        before = fed.state.checksum()
        assert machine.close(plan, [bad]).update is None and fed.state.checksum() == before  # nothing changed
        closed = machine.close(plan, [good[0], bad, good[1]])
        assert [r.client for r in closed.results] == [0, 2] and list(closed.refused) == [1]
        assert "beyond the bound" in closed.refused[1]
        expected = fed.strategy.aggregate(plan, good)
        assert np.array_equal(closed.update.coefs, expected.coefs) and np.array_equal(closed.update.seeds,
                                                                                      expected.seeds)
        assert closed.checksum == fed.state.checksum() != before
        record = machine.record(closed, 1.0)
        assert record.why_dropped == {"1": closed.refused[1]} and record.reported == [0, 2]
