"""Bad secure-aggregation requests from admitted clients: each gets a precise status, the round's protocol state
keeps only what was legal, the log is unchanged, and the coordinator stays up."""

from __future__ import annotations

import hashlib
import sqlite3
import time

import grpc
import numpy as np
import pytest
from inprocess import Caller, ServerThread

from fedseed.auth import load_private_key
from fedseed.config import dump_toml, load_document
from fedseed.keys import create_client_keys
from fedseed.secagg.protocol import SecAggClient, SecAggParams
from fedseed.v1 import coordinator_pb2 as pb

pytestmark = pytest.mark.federation
CODE = grpc.StatusCode


def coordinator(tmp, private: bool, stage_timeout_s: float = 600.0) -> tuple[ServerThread, Caller]:
    allow = create_client_keys(tmp / "keys", ["c0", "c1", "c2"])
    doc = load_document("simulations/loopback.toml")
    doc["federation"].update(num_clients=3, clients_per_round=3)
    doc["strategy"]["shared_seeds"] = True
    if private:
        doc["privacy"] = {"secure_aggregation": True, "clip": 1.0, "min_clients": 2,
                          "stage_timeout_s": stage_timeout_s}
    doc["server"] = {"address": "127.0.0.1:0", "out": str(tmp / "server"), "clients": str(allow), "min_clients": 3}
    (tmp / "server.toml").write_text(dump_toml(doc))
    server = ServerThread(str(tmp / "server.toml"), []).start()
    keys = {c: load_private_key(tmp / "keys" / f"{c}.ed25519") for c in ("c0", "c1", "c2")}
    call = Caller(server.port, keys)
    call.hello()
    fp = pb.LayoutFingerprint(spec_version="fedseed-rng-v1", fingerprint=server.coord.host.fingerprint)
    for c in keys:
        assert call.send("Join", call.signed("Join", pb.JoinRequest(layout=fp), cid=c)) == CODE.OK
    deadline = time.monotonic() + 30
    while server.coord.phase != "open" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.coord.phase == "open"
    return server, call


def log_digest(path) -> str:
    db = sqlite3.connect(path)
    h = hashlib.sha256()
    for table in ("rounds", "client_updates", "pending"):
        for row in db.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):
            h.update(repr(row).encode())
    db.close()
    return h.hexdigest()


def test_bad_secure_aggregation_requests_are_refused_and_change_nothing(tmp_path):
    server, call = coordinator(tmp_path, private=True)
    try:
        o = server.coord.open
        agent = SecAggClient(0, server.coord.machine.private.params(server.coord.run_id, o.plan, o.attempt))
        before = log_digest(tmp_path / "server" / "log.sqlite")

        def secagg(cid: str = "c0", **fields) -> grpc.StatusCode:  # noqa: ANN003
            fields = {"round": 1, "attempt": o.attempt, "wait_ms": 0} | fields
            return call.send("SecAgg", call.signed("SecAgg", pb.SecAggRequest(**fields), cid=cid))

        assert call.raw("SecAgg", b"\xff\x00garbage") == CODE.INVALID_ARGUMENT
        assert secagg() == CODE.INVALID_ARGUMENT  # no stage
        assert secagg(round=2, keys=agent.keys()) == CODE.FAILED_PRECONDITION
        assert secagg(attempt=o.attempt + 1, keys=agent.keys()) == CODE.FAILED_PRECONDITION
        assert secagg(keys=pb.SecAggKeys(cipher_key=b"x" * 31, mask_key=b"y" * 32)) == CODE.INVALID_ARGUMENT
        assert secagg(shares=pb.ShareBundle()) == CODE.FAILED_PRECONDITION  # the share stage is not open
        assert secagg(unmask=pb.UnmaskBundle()) == CODE.FAILED_PRECONDITION
        payload = np.zeros(server.coord.machine.private.length, "<u4").tobytes()
        start = bytes.fromhex(server.coord.checksums[0])
        update = pb.UpdateRequest(round=1, payload=payload, num_samples=1, start_checksum=start)
        assert call.send("SubmitUpdate", call.signed("SubmitUpdate", update)) == CODE.FAILED_PRECONDITION
        assert server.coord.open.secagg.keys == {}  # nothing bad was taken
        assert secagg(keys=agent.keys()) == CODE.OK  # a good advertisement, answered wait (the roster is open)
        other = SecAggClient(0, agent.params).keys()
        assert secagg(keys=other) == CODE.INVALID_ARGUMENT  # changing one's keys is refused
        assert server.coord.open.secagg.keys == {0: agent.keys()}
        assert server.coord.phase == "open" and log_digest(tmp_path / "server" / "log.sqlite") == before
    finally:
        server.stop()


def test_secure_aggregation_calls_in_a_run_without_it_are_refused(tmp_path):
    server, call = coordinator(tmp_path, private=False)
    try:
        keys = SecAggClient(0, SecAggParams("run", 0, 1, 0, 4, 2)).keys()
        request = pb.SecAggRequest(round=1, keys=keys)
        assert call.send("SecAgg", call.signed("SecAgg", request)) == CODE.FAILED_PRECONDITION
    finally:
        server.stop()


def test_a_client_late_for_its_stage_sits_the_attempt_out(tmp_path):
    server, call = coordinator(tmp_path, private=True, stage_timeout_s=1.0)
    try:
        o = server.coord.open
        params = server.coord.machine.private.params(server.coord.run_id, o.plan, o.attempt)

        def keys(cid: str, index: int) -> grpc.StatusCode:
            request = pb.SecAggRequest(round=1, attempt=o.attempt, wait_ms=0, keys=SecAggClient(index, params).keys())
            return call.send("SecAgg", call.signed("SecAgg", request, cid=cid))

        assert keys("c0", 0) == CODE.OK and keys("c1", 1) == CODE.OK
        deadline = time.monotonic() + 10
        while server.coord.open.secagg.stage == "keys" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.coord.open.secagg.stage == "shares"  # closed at its timeout with two of three
        assert keys("c2", 2) == CODE.FAILED_PRECONDITION
        fetch = pb.FetchTaskRequest(applied_round=0, wait_ms=0)
        signed = call.signed("FetchTask", fetch, cid="c2")
        task = pb.Task.FromString(call.channel.unary_unary("/fedseed.v1.Coordinator/FetchTask")(
            signed.body, timeout=10, metadata=signed.metadata))
        assert task.WhichOneof("kind") != "round"  # no task of this attempt again: it would only be refused again
    finally:
        server.stop()
