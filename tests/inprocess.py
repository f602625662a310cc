"""A coordinator served from a thread of the test process, for tests that speak raw gRPC to it."""

from __future__ import annotations

import asyncio
import collections
import threading
import time

import grpc

from fedseed.auth import SignedRequest, sign_request
from fedseed.server.app import serve
from fedseed.server.config import load_server_config
from fedseed.transport import method_path
from fedseed.v1 import coordinator_pb2 as pb

BUILDING = threading.Lock()  # the tiny model is initialised from torch's global generator: one build at a time


class ServerThread:
    def __init__(self, config: str, overrides: list[str]) -> None:
        self.cfg, self.sec = load_server_config(config, overrides)
        self.stopping = False
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _ready(self, coord, port: int) -> None:
        self.coord, self.port = coord, port
        self.ready.set()

    def _run(self) -> None:
        try:
            asyncio.run(serve(self.cfg, self.sec, lambda: self.stopping, self._ready))
        except BaseException as e:  # surfaced by start()/stop()
            self.error = e
            self.ready.set()

    def start(self) -> ServerThread:
        self.thread.start()
        assert self.ready.wait(120), "coordinator did not start"
        if self.error:
            raise self.error
        return self

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(30)


class Caller:
    """Signs raw requests as the allow-listed clients whose keys it holds; hello() learns the run to sign for."""

    def __init__(self, port: int, keys) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.keys = keys
        self.nonce = time.time_ns() // 1000
        self.codes: collections.Counter = collections.Counter()
        self.run_id = self.coordinator = ""

    def hello(self, cid: str = "c0"):
        """A configuration-only Join; later requests are signed for the run it names."""
        self.run_id = self.coordinator = ""
        hello = self.signed("Join", pb.JoinRequest(), cid=cid)
        reply = pb.JoinReply.FromString(self.channel.unary_unary(method_path("Join"))(
            hello.body, timeout=10, metadata=hello.metadata))
        self.run_id, self.coordinator = reply.run.run_id, reply.run.coordinator
        return reply.run

    def raw(self, method: str, data: bytes, metadata: tuple = ()) -> grpc.StatusCode:
        path = method_path(method)
        try:
            if method == "SyncLog":
                list(self.channel.unary_stream(path)(data, timeout=10, metadata=metadata))
            else:
                self.channel.unary_unary(path)(data, timeout=10, metadata=metadata)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    def signed(self, method: str, msg, cid: str = "c0", key=None, nonce=None, ts=None) -> SignedRequest:
        self.nonce += 1
        return sign_request(msg, method, cid, key or self.keys[cid], self.nonce if nonce is None else nonce,
                            int(time.time() * 1000) if ts is None else ts, self.run_id, self.coordinator)

    def send(self, method: str, request) -> grpc.StatusCode:
        """Send a SignedRequest with its signature, or raw bytes or a message unsigned."""
        if isinstance(request, SignedRequest):
            return self.raw(method, request.body, request.metadata)
        return self.raw(method, request if isinstance(request, bytes) else request.SerializeToString())

    def bad(self, method: str, request) -> None:
        code = self.send(method, request)
        assert code != grpc.StatusCode.OK, f"{method} accepted a bad message"
        self.codes[code.name] += 1


def run_in_threads(clients: list, server: ServerThread, timeout_s: float = 300) -> list[BaseException]:
    """Run each client's loop in a thread of this process until it ends, then stop the server; the errors raised."""
    errors: list[BaseException] = []

    def run(client) -> None:  # noqa: ANN001
        try:
            client.run()
        except BaseException as e:  # noqa: BLE001 -- returned to the test
            errors.append(e)

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in clients]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout_s)
    finally:
        server.stop()
    return errors
