"""Over a thousand malformed, oversized, non-finite, wrong-round, replayed, forged, unsigned and unknown-client
messages: every one gets an error status, the coordinator stays up, and its log is unchanged."""

import hashlib
import os
import random
import sqlite3
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from inprocess import Caller, ServerThread

from fedseed.auth import SignedRequest, generate_key, load_private_key, signing_bytes
from fedseed.config import dump_toml, load_document
from fedseed.conformance.signing import fetch_task_with_defaults_written
from fedseed.keys import create_client_keys
from fedseed.transport import SERVICE
from fedseed.v1 import coordinator_pb2 as pb

METHODS = {"Join": pb.JoinReply, "FetchTask": pb.Task, "SubmitUpdate": pb.UpdateReply,
           "Heartbeat": pb.HeartbeatReply, "SyncLog": pb.GlobalUpdate}
MAX_MESSAGE = 65536


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    allow = create_client_keys(tmp / "keys", ["c0", "c1"])
    doc = load_document("simulations/loopback.toml")
    doc["federation"].update(num_clients=2, clients_per_round=1)
    doc["server"] = {"address": "127.0.0.1:0", "out": str(tmp / "server"), "clients": str(allow),
                     "min_clients": 1, "max_message_bytes": MAX_MESSAGE}
    (tmp / "server.toml").write_text(dump_toml(doc))
    server = ServerThread(str(tmp / "server.toml"), []).start()
    yield server, tmp
    server.stop()


def log_digest(db_path) -> str:
    db = sqlite3.connect(db_path)
    h = hashlib.sha256()
    for table in ("meta", "rounds", "client_updates", "pending"):
        for row in db.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):
            h.update(repr(row).encode())
    db.close()
    return h.hexdigest()


def test_a_thousand_bad_messages_are_refused_and_change_nothing(coordinator):
    server, tmp = coordinator
    keys = {c: load_private_key(tmp / "keys" / f"{c}.ed25519") for c in ("c0", "c1")}
    call = Caller(server.port, keys)
    assert call.hello().run_id == server.coord.run_id
    fp = pb.LayoutFingerprint(spec_version="fedseed-rng-v1", fingerprint=server.coord.host.fingerprint)
    assert call.send("Join", call.signed("Join", pb.JoinRequest(layout=fp))) == grpc.StatusCode.OK
    deadline = time.monotonic() + 30
    while server.coord.phase != "open" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.coord.phase == "open" and server.coord.open.plan.clients == [0]
    before = log_digest(tmp / "server" / "log.sqlite")
    start = bytes.fromhex(server.coord.checksums[0])
    steps = server.cfg.strategy.local_steps
    good_payload = np.zeros(steps, "<f4").tobytes()
    rng = random.Random(0)

    def update(**kw):
        fields = dict(round=1, payload=good_payload, num_samples=10, start_checksum=start)
        fields.update(kw)
        return pb.UpdateRequest(**fields)

    for _ in range(300):  # garbage bytes to every method
        call.bad(rng.choice(list(METHODS)), bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))))
    for _ in range(10):  # larger than the coordinator's message limit
        call.bad("SubmitUpdate", call.signed("SubmitUpdate", update(payload=b"\0" * (MAX_MESSAGE + 10))))
    for method, cls in [("Join", pb.JoinRequest), ("FetchTask", pb.FetchTaskRequest),
                        ("SubmitUpdate", pb.UpdateRequest), ("Heartbeat", pb.HeartbeatRequest),
                        ("SyncLog", pb.SyncRequest)]:
        for _ in range(20):
            call.bad(method, cls())  # unsigned
            call.bad(method, call.signed(method, cls(), cid="mallory", key=generate_key()))  # unknown client
            call.bad(method, call.signed(method, cls(), cid="c1", key=keys["c0"]))  # forged identity
            call.bad(method, call.signed(method, cls(), ts=int(time.time() * 1000) - 600_000))  # stale clock
    for _ in range(50):  # replay: the same signed heartbeat twice
        hb = call.signed("Heartbeat", pb.HeartbeatRequest())
        assert call.send("Heartbeat", hb) == grpc.StatusCode.OK
        call.bad("Heartbeat", hb)
    for _ in range(50):  # tampered after signing
        signed = call.signed("SubmitUpdate", update())
        msg = pb.UpdateRequest.FromString(signed.body)
        msg.num_samples = 11
        call.bad("SubmitUpdate", SignedRequest(msg.SerializeToString(), signed.signature))
    nan = np.full(steps, np.nan, "<f4").tobytes()
    inf = np.full(steps, np.inf, "<f4").tobytes()
    huge = np.full(steps, 3e38, "<f4").tobytes()
    cases = [update(round=r) for r in (0, 2, 3, 99, 2**31)] + [
        update(payload=nan), update(payload=inf), update(payload=huge), update(payload=b"\1\2\3"),
        update(payload=good_payload + good_payload), update(payload=b""), update(num_samples=0),
        update(start_checksum=b"\1" * 5), update(start_checksum=b"\1" * 16), update(train_loss=float("inf")),
        update(skipped_steps=10**6)]
    for _ in range(20):
        for msg in cases:
            call.bad("SubmitUpdate", call.signed("SubmitUpdate", msg))
    for _ in range(25):
        call.bad("SubmitUpdate", call.signed("SubmitUpdate", update(), cid="c1"))  # not joined, not selected
        call.bad("FetchTask", call.signed("FetchTask", pb.FetchTaskRequest(), cid="c1"))
        call.bad("FetchTask", call.signed("FetchTask", pb.FetchTaskRequest(applied_round=5)))
        call.bad("FetchTask", call.signed("FetchTask", pb.FetchTaskRequest(state_checksum=b"\7" * 16)))
        call.bad("SyncLog", call.signed("SyncLog", pb.SyncRequest(from_round=9)))
        wrong = pb.LayoutFingerprint(spec_version="fedseed-rng-v1", fingerprint="0" * 64)
        call.bad("Join", call.signed("Join", pb.JoinRequest(layout=wrong), cid="c1", key=keys["c1"]))
        other_spec = pb.LayoutFingerprint(spec_version="fedseed-rng-v0", fingerprint=fp.fingerprint)
        call.bad("Join", call.signed("Join", pb.JoinRequest(layout=other_spec), cid="c1", key=keys["c1"]))
    total = sum(call.codes.values())
    assert total >= 1000, total
    # each kind of fault has its own status
    assert set(call.codes) == {"INVALID_ARGUMENT", "UNAUTHENTICATED", "FAILED_PRECONDITION",
                               "RESOURCE_EXHAUSTED"}, call.codes  # never INTERNAL or UNKNOWN
    assert server.thread.is_alive() and server.error is None
    assert call.send("Heartbeat", call.signed("Heartbeat", pb.HeartbeatRequest())) == grpc.StatusCode.OK
    assert log_digest(tmp / "server" / "log.sqlite") == before
    assert server.coord.open.results == {} and server.coord.last == 0
    health = health_pb2_grpc.HealthStub(call.channel)
    for name in ("", SERVICE):
        reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_the_running_coordinators_files_are_private(coordinator):
    """The log (every client's payload), its WAL and shared memory, metrics and summary: mode 0600."""
    server, tmp = coordinator
    server.coord.write_summary()
    out = tmp / "server"
    names = ("log.sqlite", "log.sqlite-wal", "log.sqlite-shm", "metrics.jsonl", "summary.json")
    modes = {n: os.stat(out / n).st_mode & 0o777 for n in names}
    assert modes == dict.fromkeys(names, 0o600), modes


def test_any_encoders_bytes_verify_and_a_signature_in_the_body_is_refused(coordinator):
    """Over gRPC: bytes no Python encoder writes (defaults written out, fields out of order) pass, signed as they
    are; a request of the older form, its signature inside auth, is told where the signature belongs."""
    server, tmp = coordinator
    keys = {c: load_private_key(tmp / "keys" / f"{c}.ed25519") for c in ("c0", "c1")}
    call = Caller(server.port, keys)
    call.hello()
    fp = pb.LayoutFingerprint(spec_version="fedseed-rng-v1", fingerprint=server.coord.host.fingerprint)
    assert call.send("Join", call.signed("Join", pb.JoinRequest(layout=fp))) == grpc.StatusCode.OK
    call.nonce += 1
    body = fetch_task_with_defaults_written("c0", call.nonce, int(time.time() * 1000), call.run_id,
                                            call.coordinator)
    signature = keys["c0"].sign(signing_bytes("FetchTask", body))
    assert call.send("FetchTask", SignedRequest(body, signature)) == grpc.StatusCode.OK
    old = pb.HeartbeatRequest.FromString(call.signed("Heartbeat", pb.HeartbeatRequest()).body)
    old.auth.signature = b"\1" * 64
    with pytest.raises(grpc.RpcError) as e:
        call.channel.unary_unary("/fedseed.v1.Coordinator/Heartbeat")(old.SerializeToString(), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "fedseed-signature-bin" in e.value.details()
