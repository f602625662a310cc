"""A client's connection to the coordinator: TLS or plaintext (loopback only), signed requests with strictly
increasing nonces, reconnection with exponential backoff, and a count of serialized bytes both ways."""

from __future__ import annotations

import pathlib
import sys
import threading
import time
from collections.abc import Iterator

import grpc
from google.protobuf.message import Message

from fedseed.auth import load_private_key, sign_request
from fedseed.client.config import ClientSection
from fedseed.config import ConfigError
from fedseed.private import read_private_key
from fedseed.transport import is_loopback, method_path
from fedseed.v1 import coordinator_pb2 as pb

REPLIES = {"Join": pb.JoinReply, "FetchTask": pb.Task, "SubmitUpdate": pb.UpdateReply,
           "Heartbeat": pb.HeartbeatReply, "SyncLog": pb.GlobalUpdate, "SecAgg": pb.SecAggReply}
# RESOURCE_EXHAUSTED: the coordinator is busy (its cap on calls at once, or on this client's long-polls or
# SyncLog calls), so wait and retry like an outage; a client's own requests are never over its size limit
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED)
CALL_TIMEOUT_S = 120.0
MAX_RECEIVE_BYTES = 1 << 30


def open_channel(target: str, sec: ClientSection) -> grpc.Channel:
    options = [("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)]
    if not sec.ca:
        if not is_loopback(target) and not sec.insecure:
            raise ConfigError(f"{target} is not loopback, so TLS is required: set client.ca (the federation's CA "
                              "certificate), or client.insecure = true")
        return grpc.insecure_channel(target, options=options)
    if sec.server_name:
        options.append(("grpc.ssl_target_name_override", sec.server_name))
    read = lambda p: pathlib.Path(p).read_bytes() if p else None  # noqa: E731
    key = read_private_key(sec.cert_key) if sec.cert_key else None
    creds = grpc.ssl_channel_credentials(read(sec.ca), key, read(sec.cert))
    return grpc.secure_channel(target, creds, options=options)


class CoordinatorUnreachable(RuntimeError):
    """The coordinator could not be reached for the whole reconnect window (code: the last status seen)."""

    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        super().__init__(message)
        self.code = code


class Session:
    def __init__(self, target: str, sec: ClientSection) -> None:
        self.sec, self.target = sec, target
        self.key = load_private_key(sec.key)
        self.channel = open_channel(target, sec)
        self.calls = {m: (self.channel.unary_stream if m == "SyncLog" else self.channel.unary_unary)(
            method_path(m), response_deserializer=cls.FromString)  # requests go as the bytes that were signed
            for m, cls in REPLIES.items()}
        self.lock = threading.Lock()  # one request at a time, so nonces arrive in the order they were signed
        self.nonce = time.time_ns() // 1000  # increasing across restarts of this client too
        self.run_id = self.coordinator = ""  # what requests are signed for; learnt from a hello Join
        self.bytes_up = 0
        self.bytes_down = 0
        self.last_reply = time.monotonic()

    def _send(self, method: str, request: Message, timeout: float) -> Message | list[Message]:
        self.nonce += 1
        signed = sign_request(request, method, self.sec.id, self.key, self.nonce, int(time.time() * 1000),
                              self.run_id, self.coordinator)
        self.bytes_up += len(signed.body) + len(signed.signature)
        if method == "SyncLog":
            replies = list(self.calls[method](signed.body, timeout=timeout, metadata=signed.metadata))
            self.bytes_down += sum(r.ByteSize() for r in replies)
            self.last_reply = time.monotonic()
            return replies
        reply = self.calls[method](signed.body, timeout=timeout, metadata=signed.metadata)
        self.bytes_down += reply.ByteSize()
        self.last_reply = time.monotonic()
        return reply

    def call(self, method: str, request: Message, timeout: float = CALL_TIMEOUT_S) -> Message | list[Message]:
        """Send a signed request; while the coordinator is unreachable, retry with backoff (re-signed each time)
        for up to reconnect_timeout_s, then raise CoordinatorUnreachable. Other errors are raised as grpc.RpcError."""
        give_up = time.monotonic() + self.sec.reconnect_timeout_s
        delay, warned = 0.2, False
        while True:
            try:
                with self.lock:
                    return self._send(method, request, timeout)
            except grpc.RpcError as e:
                if e.code() not in RETRYABLE:
                    raise
                if not warned:
                    state = "busy" if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else "unreachable"
                    print(f"fedseed client: the coordinator at {self.target} is {state} ({e.code().name}); "
                          f"retrying for up to {self.sec.reconnect_timeout_s:g} s", file=sys.stderr, flush=True)
                    warned = True
                if time.monotonic() + delay > give_up:
                    tls = ", or it refused this client's TLS certificate" if self.sec.ca else ""
                    raise CoordinatorUnreachable(
                        f"could not reach the coordinator at {self.target} for {self.sec.reconnect_timeout_s:g} s "
                        f"({e.code().name}: {e.details()}): it is down, or its run is over and it has shut "
                        f"down{tls}", e.code()) from None
            time.sleep(delay)
            delay = min(2 * delay, 5.0)

    def bind(self, run: pb.RunConfig) -> None:
        """Sign every later request for this run of this coordinator (from a hello's RunConfig); a client that
        pins its coordinator (client.coordinator) refuses any other."""
        if self.sec.coordinator and run.coordinator != self.sec.coordinator:
            raise ConfigError(f"the coordinator at {self.target} is {run.coordinator!r}, not the one "
                              f"client.coordinator names ({self.sec.coordinator!r}): refusing to join it")
        if not run.run_id or not run.coordinator:
            raise RuntimeError(f"the coordinator at {self.target} named no run id or identity in its reply")
        self.run_id, self.coordinator = run.run_id, run.coordinator

    def stream(self, method: str, request: Message) -> Iterator[Message]:
        yield from self.call(method, request, timeout=None)  # type: ignore[misc]

    def heartbeat(self) -> None:
        """Best effort, only after heartbeat_s of silence, never waiting behind another call (an open call or a
        recent one already shows the client is alive): no bytes are spent on it in a busy federation."""
        if time.monotonic() - self.last_reply < self.sec.heartbeat_s or not self.lock.acquire(blocking=False):
            return
        try:
            self._send("Heartbeat", pb.HeartbeatRequest(), 10.0)
        except grpc.RpcError:
            pass
        finally:
            self.lock.release()

    def close(self) -> None:
        self.channel.close()
