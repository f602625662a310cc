"""The gRPC face of the coordinator: every request is parsed, size-checked, signature-checked and validated
before it reaches the state machine; each refusal is a precise status code and changes nothing. Serialized
bytes of every request (with its signature, which travels in the call metadata) and reply are counted into the
open round's traffic."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from fedseed.auth import SIGNATURE_METADATA, AuthError
from fedseed.server.coordinator import Coordinator
from fedseed.server.registry import ClientEntry
from fedseed.server.rounds import Refusal
from fedseed.transport import SERVICE, serialize
from fedseed.v1 import coordinator_pb2 as pb

MAX_ID_CHARS = 128


class Malformed:
    """Stands in for a request whose bytes do not parse, so the handler can answer INVALID_ARGUMENT."""

    def __init__(self, size: int, error: str) -> None:
        self.size, self.error = size, error


def _parser(cls: type[Message]) -> Callable[[bytes], tuple[Message, bytes] | Malformed]:
    # the bytes travel on with the message: the signature covers them as received, never a re-serialization
    def parse(raw: bytes) -> tuple[Message, bytes] | Malformed:
        try:
            return cls.FromString(raw), raw
        except (DecodeError, RuntimeError, ValueError) as e:
            return Malformed(len(raw), str(e) or "unparseable")
    return parse


def _signature(context: grpc.aio.ServicerContext) -> bytes:
    for key, value in context.invocation_metadata() or ():
        if key == SIGNATURE_METADATA:
            return value if isinstance(value, bytes) else b""
    return b""


class CoordinatorService:
    def __init__(self, coord: Coordinator) -> None:
        self.coord = coord

    async def _admit(self, method: str, parsed: Any, context: grpc.aio.ServicerContext) -> tuple[Message, ClientEntry]:
        if isinstance(parsed, Malformed):
            self.coord.count(method, parsed.size, 0)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {method} request: {parsed.error}")
        msg, raw = parsed
        signature = _signature(context)
        self.coord.count(method, len(raw) + len(signature), 0)  # the signature travels too, in the metadata
        if len(msg.auth.client_id) > MAX_ID_CHARS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"client_id longer than {MAX_ID_CHARS} characters")
        if self.coord.sec.client_ca:  # mutual TLS: the certificate's name is the only id its holder may sign as
            names = [n.decode(errors="replace") for n in context.auth_context().get("x509_common_name", [])]
            if msg.auth.client_id not in names:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                    f"the TLS client certificate is for {', '.join(names) or 'no name'}, but the "
                                    f"request is signed as {msg.auth.client_id!r}: each client must use its own "
                                    "certificate (fedseed certs issues client-NAME.pem for client NAME)")
        try:
            entry = self.coord.registry.verify(msg, raw, signature, method)
        except AuthError as e:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(e))
        return msg, entry

    async def _unary(self, method: str, parsed: Any, context: grpc.aio.ServicerContext,
                     handle: Callable[[ClientEntry, Any], Awaitable[Message] | Message]) -> Message:
        msg, entry = await self._admit(method, parsed, context)
        try:
            reply = handle(entry, msg)
            if isinstance(reply, Awaitable):
                reply = await reply
        except Refusal as e:
            await context.abort(e.code, e.message)
        self.coord.count(method, 0, reply.ByteSize())
        return reply

    async def join(self, parsed: Any, context: grpc.aio.ServicerContext) -> pb.JoinReply:
        return await self._unary("Join", parsed, context, self.coord.join)

    async def fetch_task(self, parsed: Any, context: grpc.aio.ServicerContext) -> pb.Task:
        return await self._unary("FetchTask", parsed, context, self.coord.fetch)

    async def submit_update(self, parsed: Any, context: grpc.aio.ServicerContext) -> pb.UpdateReply:
        return await self._unary("SubmitUpdate", parsed, context, self.coord.submit)

    async def heartbeat(self, parsed: Any, context: grpc.aio.ServicerContext) -> pb.HeartbeatReply:
        return await self._unary("Heartbeat", parsed, context, lambda entry, _msg: self.coord.heartbeat(entry))

    async def secagg(self, parsed: Any, context: grpc.aio.ServicerContext) -> pb.SecAggReply:
        return await self._unary("SecAgg", parsed, context, self.coord.secagg)

    async def sync_log(self, parsed: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.GlobalUpdate]:
        msg, entry = await self._admit("SyncLog", parsed, context)
        try:
            updates = await self.coord.sync(entry, msg)
        except Refusal as e:
            await context.abort(e.code, e.message)
        for u in updates:
            self.coord.count("SyncLog", 0, u.ByteSize())
            yield u

    def handler(self) -> grpc.GenericRpcHandler:
        ser = serialize
        unary = {"Join": (self.join, pb.JoinRequest), "FetchTask": (self.fetch_task, pb.FetchTaskRequest),
                 "SubmitUpdate": (self.submit_update, pb.UpdateRequest),
                 "Heartbeat": (self.heartbeat, pb.HeartbeatRequest), "SecAgg": (self.secagg, pb.SecAggRequest)}
        methods = {name: grpc.unary_unary_rpc_method_handler(fn, request_deserializer=_parser(cls),
                                                             response_serializer=ser)
                   for name, (fn, cls) in unary.items()}
        methods["SyncLog"] = grpc.unary_stream_rpc_method_handler(
            self.sync_log, request_deserializer=_parser(pb.SyncRequest), response_serializer=ser)
        return grpc.method_handlers_generic_handler(SERVICE, methods)
