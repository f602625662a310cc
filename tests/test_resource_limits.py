"""What one caller may cost the coordinator: a message limit derived from the run's largest legal request,
concurrent calls, open long-polls and SyncLog calls per client -- each refused RESOURCE_EXHAUSTED, changing
nothing -- and SyncLog replies built off the event loop, so heartbeats are answered while one is built."""

import struct
import threading
import time

import grpc
import numpy as np
import pytest
from convex import Problem
from inprocess import Caller, ServerThread
from test_hostile_input import log_digest

from fedseed import strategies, wire
from fedseed.auth import generate_key, load_private_key, sign_request
from fedseed.config import ConfigError, dump_toml, load_config, load_document
from fedseed.keys import create_client_keys
from fedseed.round_machine import ResultRefused, RoundMachine
from fedseed.roundlog import RoundLog
from fedseed.server import limits
from fedseed.server.config import ServerSection, load_server_config
from fedseed.server.service import MAX_ID_CHARS
from fedseed.server.sync_reader import round_message
from fedseed.strategies.base import ClientResult, RunSetup
from fedseed.transport import method_path
from fedseed.v1 import coordinator_pb2 as pb

NETWORKED = {"fedkseed": {"num_seeds": 64, "local_steps": 7, "codec": "fp16"},
             "fedkseed-pro": {"num_seeds": 64, "local_steps": 3},
             "ferret": {"num_bases": 32, "local_steps": 2}, "onebyte": {"samples_per_step": 5}}


def set_up(name: str, **settings):
    p = Problem(num_clients=2)
    return p, strategies.strategy_class(name)(**settings).setup(RunSetup(7, 2, 2, p.layout))


@pytest.mark.parametrize("name", sorted(NETWORKED))
def test_an_honest_result_fits_its_strategys_largest_payload_and_request(name):
    p, strategy = set_up(name, lr=0.01, **NETWORKED[name])
    plan = strategy.configure_round(1, [0, 1])
    result = strategy.local_work(p.context(1, 0), plan, 0)
    assert len(result.payload) == strategy.max_payload_bytes()
    expected = {"fedkseed": 7 * 2, "fedkseed-pro": 3 * 4, "ferret": 32 * 4, "onebyte": 5}[name]
    assert strategy.max_payload_bytes() == expected
    request = wire.update_request(result, "ab" * 16)
    sign_request(request, "SubmitUpdate", "c" * MAX_ID_CHARS, generate_key(), (1 << 64) - 1, -1)
    largest = limits.largest_requests(strategy)
    assert request.ByteSize() <= largest["SubmitUpdate"]
    assert limits.message_limit(ServerSection(), strategy) >= max(largest.values()) + limits.HEADROOM_BYTES


def test_a_ferret_payload_beyond_the_adaptive_bound_is_refused():
    p, strategy = set_up("ferret", num_bases=8, adaptive_k=True, lr=0.01)
    assert len(strategy.blocks) == 1 and strategy.max_payload_bytes() == 2 + (8 + 1) * 4
    machine = RoundMachine(load_config("simulations/smoke.toml"), strategy, None)
    plan = strategy.configure_round(1, [0])

    def result(k: int) -> ClientResult:
        return ClientResult(1, 0, struct.pack("<H", k) + np.zeros(k, "<f4").tobytes(), 4, 0.5)

    machine.check(plan, result(9))  # within the bound (K + one per block)
    with pytest.raises(ResultRefused, match="exceeds a legal result's 38 bytes"):
        machine.check(plan, result(10))  # the strategy's own checks would take it: ks and coefficients agree


def test_the_limit_is_derived_unless_set_and_never_below_a_legal_request():
    _, strategy = set_up("ferret", num_bases=1024, local_steps=1)
    need = limits.largest_requests(strategy)["SubmitUpdate"]
    assert need > 4096
    assert limits.message_limit(ServerSection(), strategy) == -(-(need + 1024) // 4096) * 4096
    assert limits.message_limit(ServerSection(max_message_bytes=1 << 20), strategy) == 1 << 20
    with pytest.raises(ConfigError, match="below this run's largest legal request"):
        limits.message_limit(ServerSection(max_message_bytes=4096), strategy)
    assert limits.MAX_ID_BYTES >= 4 * MAX_ID_CHARS
    assert limits.concurrent_rpcs(ServerSection(), 10) == 72
    assert limits.concurrent_rpcs(ServerSection(max_concurrent_rpcs=7), 10) == 7


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory):
    """Four allow-listed clients, a round opening only when all four are online (never, here): FetchTask
    long-polls; SyncLog allows 3 calls at once and refills slowly; 6 calls at once in all."""
    tmp = tmp_path_factory.mktemp("limits")
    allow = create_client_keys(tmp / "keys", ["c0", "c1", "c2", "c3"])
    doc = load_document("simulations/loopback.toml")
    doc["server"] = {"address": "127.0.0.1:0", "out": str(tmp / "server"), "clients": str(allow),
                     "min_clients": 4, "max_concurrent_rpcs": 6, "sync_burst": 3, "sync_per_minute": 0.5}
    (tmp / "server.toml").write_text(dump_toml(doc))
    server = ServerThread(str(tmp / "server.toml"), []).start()
    keys = {c: load_private_key(tmp / "keys" / f"{c}.ed25519") for c in ("c0", "c1", "c2", "c3")}
    call = Caller(server.port, keys)
    call.hello()
    fp = pb.LayoutFingerprint(spec_version="fedseed-rng-v1", fingerprint=server.coord.host.fingerprint)
    for cid in ("c0", "c1", "c2"):
        assert call.send("Join", call.signed("Join", pb.JoinRequest(layout=fp), cid=cid)) == grpc.StatusCode.OK
    yield server, tmp, call
    server.stop()


def test_a_request_over_the_derived_limit_is_refused_before_it_is_parsed(coordinator):
    server, _, call = coordinator
    assert server.coord.max_message_bytes == 4096  # four fp32 scalars: a few hundred bytes, rounded up
    assert call.raw("SubmitUpdate", b"\0" * 4097) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert call.raw("SubmitUpdate", b"\0" * 4096) == grpc.StatusCode.INVALID_ARGUMENT  # read, then unparseable
    assert call.raw("Heartbeat", b"\0" * (4 << 20)) == grpc.StatusCode.RESOURCE_EXHAUSTED


def hold_fetch(call: Caller, server: ServerThread, cid: str) -> grpc.Future:
    """A FetchTask long-poll left open; waits until the coordinator counts it (nonces arrive in order)."""
    before = server.coord.registry.in_call.get(cid, 0)
    msg = call.signed("FetchTask", pb.FetchTaskRequest(wait_ms=30_000), cid=cid)
    future = call.channel.unary_unary(method_path("FetchTask")).future(msg.body, timeout=60, metadata=msg.metadata)
    end = time.monotonic() + 10
    while server.coord.registry.in_call.get(cid, 0) == before and time.monotonic() < end:
        time.sleep(0.01)
    assert server.coord.registry.in_call.get(cid, 0) == before + 1
    return future


def release(server: ServerThread, futures: list[grpc.Future]) -> None:
    left = sum(server.coord.registry.in_call.values()) - len(futures)
    for f in futures:
        f.cancel()
    end = time.monotonic() + 10
    while sum(server.coord.registry.in_call.values()) > left and time.monotonic() < end:
        time.sleep(0.01)
    assert sum(server.coord.registry.in_call.values()) == left


def refusal(call: Caller, method: str, msg) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        if method == "SyncLog":
            list(call.channel.unary_stream(method_path(method))(msg.body, timeout=10, metadata=msg.metadata))
        else:
            call.channel.unary_unary(method_path(method))(msg.body, timeout=10, metadata=msg.metadata)
    return e.value


def test_a_third_open_long_poll_of_one_client_is_refused_and_counts_nothing(coordinator):
    server, tmp, call = coordinator
    held = [hold_fetch(call, server, "c0"), hold_fetch(call, server, "c0")]
    before = log_digest(tmp / "server" / "log.sqlite")
    checksums = dict(server.coord.checksums)
    # a wrong checksum would be FAILED_PRECONDITION (forked): the cap is checked before anything is learnt
    third = call.signed("FetchTask", pb.FetchTaskRequest(wait_ms=30_000, state_checksum=b"\7" * 16), cid="c0")
    e = refusal(call, "FetchTask", third)
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_long_polls" in e.details()
    assert server.coord.registry.in_call["c0"] == 2 and server.coord.checksums == checksums
    assert log_digest(tmp / "server" / "log.sqlite") == before
    held.append(hold_fetch(call, server, "c1"))  # the cap is per client
    release(server, held)
    release(server, [hold_fetch(call, server, "c0")])  # a returned call frees its place


def test_calls_beyond_the_concurrent_cap_are_refused(coordinator):
    server, _, call = coordinator
    held = [hold_fetch(call, server, cid) for cid in ("c0", "c0", "c1", "c1", "c2", "c2")]  # 6: the cap
    e = refusal(call, "Heartbeat", call.signed("Heartbeat", pb.HeartbeatRequest(), cid="c0"))
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    release(server, held[:1])
    end = time.monotonic() + 5  # gRPC counts the cancelled call until its handler has returned
    while (code := call.send("Heartbeat", call.signed("Heartbeat", pb.HeartbeatRequest(), cid="c3"))) != \
            grpc.StatusCode.OK and time.monotonic() < end:
        time.sleep(0.05)
    assert code == grpc.StatusCode.OK
    release(server, held[1:])


def test_synclog_calls_beyond_a_clients_bucket_are_refused(coordinator):
    server, _, call = coordinator
    for _ in range(5):  # refused for another reason: spends nothing
        e = refusal(call, "SyncLog", call.signed("SyncLog", pb.SyncRequest(from_round=9), cid="c2"))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    for _ in range(3):  # sync_burst
        assert call.send("SyncLog", call.signed("SyncLog", pb.SyncRequest(), cid="c2")) == grpc.StatusCode.OK
    e = refusal(call, "SyncLog", call.signed("SyncLog", pb.SyncRequest(), cid="c2"))
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "sync_burst = 3" in e.details()
    assert call.send("SyncLog", call.signed("SyncLog", pb.SyncRequest(), cid="c1")) == grpc.StatusCode.OK


@pytest.mark.parametrize("key,value", [("max_concurrent_rpcs", -1), ("max_long_polls", 0), ("sync_per_minute", 0.0),
                                       ("sync_burst", 0), ("max_message_bytes", 100)])
def test_the_new_server_keys_are_range_checked(tmp_path, key, value):
    allow = create_client_keys(tmp_path / "keys", ["c0"])
    doc = load_document("simulations/loopback.toml")
    doc["federation"].update(num_clients=1, clients_per_round=1)
    doc["server"] = {"address": "127.0.0.1:0", "clients": str(allow), "min_clients": 1, key: value}
    (tmp_path / "server.toml").write_text(dump_toml(doc))
    with pytest.raises(ConfigError, match=f"server.{key}"):
        load_server_config(str(tmp_path / "server.toml"))


@pytest.fixture(scope="module")
def one_round(tmp_path_factory):
    """A coordinator whose log holds round 1 (c0's zero scalars)."""
    tmp = tmp_path_factory.mktemp("logged")
    allow = create_client_keys(tmp / "keys", ["c0", "c1"])
    doc = load_document("simulations/loopback.toml")
    doc["federation"].update(num_clients=2, clients_per_round=1)
    doc["server"] = {"address": "127.0.0.1:0", "out": str(tmp / "server"), "clients": str(allow), "min_clients": 1}
    (tmp / "server.toml").write_text(dump_toml(doc))
    server = ServerThread(str(tmp / "server.toml"), []).start()
    call = Caller(server.port, {c: load_private_key(tmp / "keys" / f"{c}.ed25519") for c in ("c0", "c1")})
    call.hello()
    fp = pb.LayoutFingerprint(spec_version="fedseed-rng-v1", fingerprint=server.coord.host.fingerprint)
    assert call.send("Join", call.signed("Join", pb.JoinRequest(layout=fp))) == grpc.StatusCode.OK
    end = time.monotonic() + 30
    while server.coord.phase != "open" and time.monotonic() < end:
        time.sleep(0.05)
    update = pb.UpdateRequest(round=1, payload=np.zeros(server.cfg.strategy.local_steps, "<f4").tobytes(),
                              num_samples=10, start_checksum=bytes.fromhex(server.coord.checksums[0]))
    assert call.send("SubmitUpdate", call.signed("SubmitUpdate", update)) == grpc.StatusCode.OK
    while server.coord.last < 1 and time.monotonic() < end:
        time.sleep(0.05)
    assert server.coord.last == 1
    yield server, call
    server.stop()


def test_a_heartbeat_is_answered_while_a_synclog_reply_is_built(one_round, monkeypatch):
    server, call = one_round
    reader = server.coord.reader
    building, go_on = threading.Event(), threading.Event()
    build = reader.replies

    def slow(*args):
        building.set()
        assert go_on.wait(20), "the heartbeat was not answered while the SyncLog reply was built"
        return build(*args)

    monkeypatch.setattr(reader, "replies", slow)
    msg = call.signed("SyncLog", pb.SyncRequest(from_round=0))
    replies: list = []
    stream = threading.Thread(target=lambda: replies.extend(
        call.channel.unary_stream(method_path("SyncLog"), response_deserializer=pb.GlobalUpdate.FromString)(
            msg.body, timeout=30, metadata=msg.metadata)))
    stream.start()
    assert building.wait(10)
    beat = call.channel.unary_unary(method_path("Heartbeat"), response_deserializer=pb.HeartbeatReply.FromString)
    hb = call.signed("Heartbeat", pb.HeartbeatRequest())
    reply = beat(hb.body, timeout=5, metadata=hb.metadata)
    assert reply.current_round == 2
    go_on.set()
    stream.join(30)
    with RoundLog(server.coord.out / "log.sqlite", read_only=True) as log:
        expected = round_message(log, server.coord.strategy, 1, server.coord.checksums[1])
    assert [m.SerializeToString() for m in replies] == [expected.SerializeToString()]
