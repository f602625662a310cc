"""Who may speak to a coordinator, over real sockets: a request signed for one run of one coordinator is refused by
any other (a captured Join replayed to a second run, or to a coordinator resumed from a copy of the log under
another name); and the allow-list is re-read while the coordinator runs."""

import json
import os
import shutil
import time

import grpc
import pytest
from inprocess import Caller, ServerThread

from fedseed.auth import SignedRequest, generate_key, load_private_key, public_hex
from fedseed.config import dump_toml, load_document
from fedseed.keys import create_client_keys
from fedseed.rng_spec import SPEC_VERSION
from fedseed.server.registry import file_state
from fedseed.transport import method_path
from fedseed.v1 import coordinator_pb2 as pb


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    allow = create_client_keys(folder, ["c0", "c1"])
    return allow, {c: load_private_key(folder / f"{c}.ed25519") for c in ("c0", "c1")}


def coordinator(tmp_path, folder: str, allow, clients: int = 2, **server) -> ServerThread:
    doc = load_document("simulations/loopback.toml")
    doc["federation"].update(num_clients=clients, clients_per_round=2)
    doc["server"] = {"address": "127.0.0.1:0", "out": str(tmp_path / folder), "clients": str(allow),
                     "min_clients": 2, **server}
    path = tmp_path / f"{folder}.toml"
    path.write_text(dump_toml(doc))
    return ServerThread(str(path), []).start()


def call(port: int, method: str, signed: SignedRequest) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            channel.unary_unary(method_path(method))(signed.body, timeout=10, metadata=signed.metadata)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details()


def test_a_join_captured_from_one_run_is_refused_by_another(tmp_path, keys):
    allow, private = keys
    a = coordinator(tmp_path, "a", allow, name="coordinator-a")
    try:
        caller = Caller(a.port, private)
        run = caller.hello()
        assert (run.run_id, run.coordinator) == (a.coord.run_id, "coordinator-a")
        layout = pb.LayoutFingerprint(spec_version=SPEC_VERSION, fingerprint=a.coord.host.fingerprint)
        captured = caller.signed("Join", pb.JoinRequest(layout=layout))
        unsent = caller.signed("Join", pb.JoinRequest(layout=layout))
        assert call(a.port, "Join", captured) == (grpc.StatusCode.OK, "")
        caller.run_id = ""  # only a hello may name no run
        code, details = call(a.port, "Join", caller.signed("Join", pb.JoinRequest(layout=layout)))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "names no run" in details
    finally:
        a.stop()
    b = coordinator(tmp_path, "b", allow, name="coordinator-a")  # a new run, even under the same name
    try:
        assert b.coord.run_id != run.run_id
        for data in (captured, unsent):
            code, details = call(b.port, "Join", data)
            assert code == grpc.StatusCode.UNAUTHENTICATED, details
            assert f"signed for run '{run.run_id}'" in details and b.coord.run_id not in details
        assert b.coord.registry.admitted == set() and b.coord.registry.verifier.last_nonce == {}
    finally:
        b.stop()
    (tmp_path / "c").mkdir()
    shutil.copy(tmp_path / "a" / "log.sqlite", tmp_path / "c" / "log.sqlite")
    c = coordinator(tmp_path, "c", allow, name="coordinator-c")  # the same run resumed by another coordinator
    try:
        assert c.coord.run_id == run.run_id
        code, details = call(c.port, "Join", unsent)
        assert code == grpc.StatusCode.UNAUTHENTICATED and "of coordinator 'coordinator-a'" in details
        caller = Caller(c.port, private)
        assert caller.hello().coordinator == "coordinator-c"
        assert caller.send("Join", caller.signed("Join", pb.JoinRequest(layout=layout))) == grpc.StatusCode.OK
    finally:
        c.stop()


def write_allow(path, entries: dict[str, tuple[int, str]]) -> None:
    """Replace the allow-list the way an operator should: write a new file, then rename it over the old."""
    tmp = path.with_suffix(".new")
    tmp.write_text(json.dumps({"clients": [{"id": c, "index": i, "public_key": k}
                                           for c, (i, k) in entries.items()]}))
    os.replace(tmp, path)


def reloaded(server: ServerThread, path) -> None:
    end = time.monotonic() + 10
    while server.coord.registry.seen != file_state(path):
        assert time.monotonic() < end, "the coordinator did not look at the new allow-list"
        time.sleep(0.02)


def test_the_allow_list_is_reloaded_without_a_restart(tmp_path, capfd):
    """Revocation and key rotation take effect from a client's next call; a malformed list, or one that moves an
    index, is reported and the old list kept."""
    allow = create_client_keys(tmp_path / "keys", ["c0", "c1", "c2"])
    private = {c: load_private_key(tmp_path / "keys" / f"{c}.ed25519") for c in ("c0", "c1", "c2")}
    listed = {e["id"]: (e["index"], e["public_key"]) for e in json.loads(allow.read_text())["clients"]}
    server = coordinator(tmp_path, "server", allow, clients=3, min_clients=3)
    try:
        caller = Caller(server.port, private)
        caller.hello()

        def beat(cid: str, key=None) -> tuple[grpc.StatusCode, str]:
            return call(server.port, "Heartbeat", caller.signed("Heartbeat", pb.HeartbeatRequest(), cid=cid,
                                                                key=key))

        old_c1 = caller.signed("Heartbeat", pb.HeartbeatRequest(), cid="c1")
        assert beat("c1") == beat("c0") == (grpc.StatusCode.OK, "")
        write_allow(allow, {c: listed[c] for c in ("c0", "c2")})  # c1 revoked
        reloaded(server, allow)
        assert beat("c1") == (grpc.StatusCode.UNAUTHENTICATED, "unknown client or bad signature")
        assert beat("c0")[0] == grpc.StatusCode.OK
        assert "reloaded: removed c1" in capfd.readouterr().err
        allow.write_text('{"clients": [{"id": "c0", "index": 0')  # a half-written file
        reloaded(server, allow)
        assert "was not reloaded" in capfd.readouterr().err
        assert beat("c0")[0] == grpc.StatusCode.OK and beat("c1")[0] == grpc.StatusCode.UNAUTHENTICATED
        rotated = generate_key()
        write_allow(allow, {"c0": (0, public_hex(rotated)), "c2": listed["c2"]})  # c0's key rotated
        reloaded(server, allow)
        assert beat("c0")[1] == "unknown client or bad signature" and beat("c0", rotated)[0] == grpc.StatusCode.OK
        for moved in ({"c0": (1, public_hex(rotated)), "c2": listed["c2"]},  # c0 to another index
                      {"c0": (0, public_hex(rotated)), "c2": listed["c2"], "c3": (1, listed["c1"][1])}):  # c1's
            write_allow(allow, moved)
            reloaded(server, allow)
            err = capfd.readouterr().err
            assert "was not reloaded" in err and ("index 0 in this run" in err or "which is c1's" in err), err
            assert beat("c0", rotated)[0] == grpc.StatusCode.OK  # the old list stands
        assert server.coord.registry.by_index.keys() == {0, 2}
        write_allow(allow, {"c0": (0, public_hex(rotated)), **{c: listed[c] for c in ("c1", "c2")}})
        reloaded(server, allow)
        assert call(server.port, "Heartbeat", old_c1)[0] == grpc.StatusCode.UNAUTHENTICATED  # still a replay
        assert beat("c1")[0] == grpc.StatusCode.OK  # listed again
    finally:
        server.stop()
    assert server.error is None
