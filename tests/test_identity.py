"""Who may speak to a coordinator, over real sockets: a request signed for one run of one coordinator is refused by
any other (a captured Join replayed to a second run, or to a coordinator resumed from a copy of the log under
another name)."""

import shutil

import grpc
import pytest
from inprocess import Caller, ServerThread

from fedseed.auth import load_private_key
from fedseed.config import dump_toml, load_document
from fedseed.keys import create_client_keys
from fedseed.rng_spec import SPEC_VERSION
from fedseed.transport import method_path
from fedseed.v1 import coordinator_pb2 as pb


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    allow = create_client_keys(folder, ["c0", "c1"])
    return allow, {c: load_private_key(folder / f"{c}.ed25519") for c in ("c0", "c1")}


def coordinator(tmp_path, folder: str, allow, **server) -> ServerThread:
    doc = load_document("simulations/loopback.toml")
    doc["federation"].update(num_clients=2, clients_per_round=2)
    doc["server"] = {"address": "127.0.0.1:0", "out": str(tmp_path / folder), "clients": str(allow),
                     "min_clients": 2, **server}
    path = tmp_path / f"{folder}.toml"
    path.write_text(dump_toml(doc))
    return ServerThread(str(path), []).start()


def call(port: int, method: str, data: bytes) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            channel.unary_unary(method_path(method))(data, timeout=10)
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
        captured = caller.signed("Join", pb.JoinRequest(layout=layout)).SerializeToString()
        unsent = caller.signed("Join", pb.JoinRequest(layout=layout)).SerializeToString()
        assert call(a.port, "Join", captured) == (grpc.StatusCode.OK, "")
        caller.run_id = ""  # only a hello may name no run
        code, details = call(a.port, "Join", caller.signed("Join", pb.JoinRequest(layout=layout))
                             .SerializeToString())
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
