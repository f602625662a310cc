"""Round orchestration at the coordinator: a round short of its quorum at the deadline is drawn again among the
clients still online and keeps the results it already accepted; late and duplicate updates are refused."""

import json
import time

import grpc
import numpy as np
from inprocess import Caller, ServerThread

from fedseed.auth import load_private_key
from fedseed.config import dump_toml, load_document
from fedseed.keys import create_client_keys
from fedseed.v1 import coordinator_pb2 as pb


def test_round_short_of_quorum_is_redrawn_keeping_accepted_results(tmp_path):
    allow = create_client_keys(tmp_path / "keys", ["c0", "c1"])
    doc = load_document("simulations/loopback.toml")
    doc["run"]["rounds"] = 1
    doc["federation"].update(num_clients=2, clients_per_round=2)
    doc["server"] = {"address": "127.0.0.1:0", "out": str(tmp_path / "server"), "clients": str(allow),
                     "min_clients": 1, "quorum": 2, "round_deadline_s": 2.0, "heartbeat_timeout_s": 1.0,
                     "linger_s": 30.0}
    (tmp_path / "server.toml").write_text(dump_toml(doc))
    server = ServerThread(str(tmp_path / "server.toml"), []).start()
    keys = {c: load_private_key(tmp_path / "keys" / f"{c}.ed25519") for c in ("c0", "c1")}
    call = Caller(server.port, keys)
    call.hello()
    try:
        fp = pb.LayoutFingerprint(spec_version="fedseed-rng-v1", fingerprint=server.coord.host.fingerprint)
        for c in ("c0", "c1"):
            assert call.send("Join", call.signed("Join", pb.JoinRequest(layout=fp), cid=c)) == grpc.StatusCode.OK
        end = time.monotonic() + 10
        while server.coord.phase != "open" and time.monotonic() < end:
            time.sleep(0.02)
        assert server.coord.open.plan.clients == [0, 1]
        update = pb.UpdateRequest(round=1, num_samples=5, start_checksum=bytes.fromhex(server.coord.checksums[0]),
                                  payload=np.full(server.cfg.strategy.local_steps, 0.1, "<f4").tobytes())
        assert call.send("SubmitUpdate", call.signed("SubmitUpdate", update)) == grpc.StatusCode.OK
        call.bad("SubmitUpdate", call.signed("SubmitUpdate", update))  # a second copy: ALREADY_EXISTS
        assert call.codes == {"ALREADY_EXISTS": 1}
        # c1 stays silent: at the deadline 1 of 2 results < quorum; c1 is offline by then, so the round is
        # drawn again among the online clients ([0]) and closes with c0's result
        end = time.monotonic() + 15
        while server.coord.last < 1 and time.monotonic() < end:  # c0 stays online by its heartbeats
            assert call.send("Heartbeat", call.signed("Heartbeat", pb.HeartbeatRequest())) == grpc.StatusCode.OK
            time.sleep(0.2)
        assert server.coord.last == 1
        call.bad("SubmitUpdate", call.signed("SubmitUpdate", update, cid="c1"))  # a straggler: round closed
        assert call.codes["FAILED_PRECONDITION"] == 1
    finally:
        server.stop()
    rows = [json.loads(line) for line in (tmp_path / "server" / "metrics.jsonl").read_text().splitlines()]
    assert rows[1]["attempts"] == 2 and rows[1]["clients"] == 1 and rows[1]["planned"] == 1
