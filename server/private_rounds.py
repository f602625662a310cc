"""A coordinator's private rounds (docs/privacy.md): the secure-aggregation stages over time, the SecAgg RPC,
masked or quantized submissions, and closing from the sum alone. Nothing individual is kept: a private
submission is never written to the log, and a round that fails a stage (too few clients, or too few left to
unmask) is drawn again with fresh keys, since its masked vectors mean nothing without the secrets of that
attempt."""

from __future__ import annotations

import asyncio
import sys
import time

import grpc

from fedseed.private_round import masked_result
from fedseed.secagg import field as fld
from fedseed.secagg.protocol import ProtocolError, SecAggServer
from fedseed.server.rounds import OpenRound, Refusal
from fedseed.strategies.base import ClientResult
from fedseed.v1 import coordinator_pb2 as pb
from fedseed.wire import SIZED_CHECKSUM, update_request

FAILED = grpc.StatusCode.FAILED_PRECONDITION
STAGE_OF = {"keys": "keys", "shares": "shares", "unmask": "unmask"}  # a request's message -> the stage taking it
ORDER = ("keys", "shares", "masked", "unmask", "done")


class PrivateRounds:
    """The private half of the Coordinator (which provides machine, registry, open round, phase and notify)."""

    @property
    def private(self) -> bool:
        return self.machine.private is not None

    @property
    def secure(self) -> bool:
        return self.private and self.cfg.privacy.secure_aggregation

    def start_private(self, o: OpenRound) -> None:
        """A new attempt of a private round: no result carries over; with secure aggregation, a fresh protocol."""
        o.results = {}
        o.stage_since = time.time()
        if self.secure:
            o.secagg = SecAggServer(self.machine.private.params(self.run_id, o.plan, o.attempt), list(o.plan.clients))

    def private_task(self, o: OpenRound) -> pb.PrivateRound:
        return self.machine.private.round_message(o.attempt)

    # ---- submissions -------------------------------------------------------------------------------------
    def submit_private(self, o: OpenRound, entry_index: int, req: pb.UpdateRequest) -> ClientResult:
        """Take a masked (or, without secure aggregation, quantized) vector; it is never logged."""
        result = masked_result(req.round, entry_index, req.payload)
        if o.secagg is not None:
            if o.secagg.stage != "masked":
                raise Refusal(FAILED, f"round {req.round} is in secure-aggregation stage {o.secagg.stage!r}: a "
                                      "masked vector is taken only after the share exchange")
            try:
                o.secagg.add_masked(entry_index, req.payload)
            except ProtocolError as e:
                raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        else:
            self._check_quantized(req.payload)
        o.private_up += update_request(result, SIZED_CHECKSUM).ByteSize()
        return result

    def _check_quantized(self, payload: bytes) -> None:
        """Without masks the coordinator sees the vector, so it checks the clip exactly, in integers."""
        private = self.machine.private
        try:
            q = fld.from_field(fld.unpack(payload, private.length))
        except ValueError as e:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"payload refused: {e}") from None
        if not private.quantizer.within(q):
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "payload refused: the vector is beyond privacy.clip")

    # ---- the stages over time ------------------------------------------------------------------------------
    def private_tick(self, o: OpenRound) -> None:
        """Close a stage when every client still in the round has sent its message, or at the stage's timeout."""
        if self.phase != "open" or o is not self.open:  # closing (or drawn again): the close decides what follows
            return
        if o.secagg is None:  # central noise without masks: a round closes as any other
            return self.plain_tick(o)
        sa, now = o.secagg, time.time()
        # clients train between the share exchange and their masked vectors: that stage lasts to the round's deadline
        ends = o.deadline if sa.stage == "masked" else o.stage_since + self.cfg.privacy.stage_timeout_s
        late = now >= ends
        if sa.stage in ("keys", "shares", "masked") and (late or not sa.waiting_for()):
            {"keys": sa.close_keys, "shares": sa.close_shares, "masked": sa.close_masked}[sa.stage]()
            o.stage_since = now
            self.notify()
        elif sa.stage == "unmask" and (late or not sa.waiting_for()):
            self.phase = "closing"
            self.notify()
            asyncio.get_running_loop().create_task(self._close_private(o))
        if sa.stage == "failed":
            self._private_failed(o, sa.why_failed)

    def plain_tick(self, o: OpenRound) -> None:
        if self.phase == "open" and (o.complete() or time.time() >= o.deadline):
            if len(o.results) >= self.cfg.privacy.min_clients:
                self.phase = "closing"
                self.notify()
                asyncio.get_running_loop().create_task(self._close_private(o))
            elif time.time() >= o.deadline:
                self._private_failed(o, f"{len(o.results)} results by the deadline, fewer than privacy.min_clients")

    def _private_failed(self, o: OpenRound, why: str) -> None:
        print(f"fedseed server: round {o.plan.round} (attempt {o.attempt + 1}) is drawn again: {why}",
              file=sys.stderr)
        o.failed = why
        self._redraw(o)

    async def _close_private(self, o: OpenRound) -> None:
        loop = asyncio.get_running_loop()
        clients = sorted(o.secagg.masked if o.secagg is not None else o.results)
        self._note_release(o, clients)  # the sum is seen from here on: a crash must not let it be released uncounted
        try:
            if o.secagg is not None:
                ssum = await loop.run_in_executor(None, o.secagg.total)
            else:
                ssum = self.machine.private.plain_sum(
                    {c: fld.unpack(r.payload, self.machine.private.length) for c, r in o.results.items()})
            if ssum.failed:
                self._note_release(o, None)
                self.phase = "open"
                return self._private_failed(o, ssum.failed)
            closed = await loop.run_in_executor(None, self.machine.close_private, o.plan, ssum,
                                                (o.private_up, o.private_down))
        except BaseException as e:  # noqa: BLE001 -- the held state may be half changed: stop, resume from the log
            self.fault = e
            return
        if closed.update is None:  # nothing was released (too few clients): nothing was spent
            self._note_release(o, None)
            self.phase = "open"
            return self._private_failed(o, "the round's sum could not be released")
        self._commit(o, closed)

    def _note_release(self, o: OpenRound, clients: list[int] | None) -> None:
        """Record in the log, before a sum is unmasked, whose data it holds (None: that sum was never unmasked).
        The accountant counts these releases on resume until the round is committed with its saved state."""
        if self.machine.private.accountant is None:
            return
        kept = [e for e in self.unsaved_releases() if (e["round"], e["attempt"]) != (o.plan.round, o.attempt)]
        if clients is not None:
            kept.append({"round": o.plan.round, "attempt": o.attempt, "clients": clients})
        self.log.set_meta(unsaved_releases=kept)

    def unsaved_releases(self) -> list[dict]:
        try:
            return list(self.log.meta("unsaved_releases"))
        except KeyError:
            return []

    def count_unsaved_releases(self, last: int) -> None:
        """On resume: sums unmasked after the last committed round cost their clients too."""
        accountant = self.machine.private.accountant if self.private else None
        if accountant is None:
            return
        for release in self.unsaved_releases():
            if release["round"] > last:
                accountant.spend(release["clients"])

    # ---- the SecAgg RPC ----------------------------------------------------------------------------------
    async def secagg(self, entry, req: pb.SecAggRequest) -> pb.SecAggReply:  # noqa: ANN001 (ClientEntry)
        self.registry.require_admitted(entry)
        if not self.secure:
            raise Refusal(FAILED, "this run does not use secure aggregation (privacy.secure_aggregation is false)")
        kind = req.WhichOneof("stage")
        if kind is None:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "a SecAgg request must carry one stage's message")
        o = self._private_round(entry, req)
        self.limits.check_long_poll(entry.id, self.registry.in_call.get(entry.id, 0))  # before anything is taken
        self._take(o, entry.index, kind, req)
        self.private_tick(o)
        reply = await self.long_poll(entry, req.wait_ms, lambda: self._outcome(o, entry.index, kind),
                                     lambda r: r is not None)
        return reply or pb.SecAggReply(wait=pb.Wait(retry_after_ms=0))

    def _private_round(self, entry, req: pb.SecAggRequest) -> OpenRound:  # noqa: ANN001
        o = self.open
        if o is None or req.round != o.plan.round or self.phase not in ("open", "closing"):
            raise Refusal(FAILED, f"round {req.round} is not open for secure aggregation")
        if req.attempt != o.attempt:
            raise Refusal(FAILED, f"round {req.round} is in attempt {o.attempt}, not {req.attempt}: it was drawn "
                                  "again; fetch its task")
        if entry.index not in o.plan.clients:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, f"client {entry.id} is not drawn for round {req.round}")
        return o

    def _take(self, o: OpenRound, client: int, kind: str, req: pb.SecAggRequest) -> None:
        sa, stage = o.secagg, STAGE_OF.get(kind)
        if stage is None:  # await_survivors carries nothing to take
            if (client, kind) not in o.counted:
                o.counted.add((client, kind))
                o.private_up += pb.SecAggRequest(round=req.round, attempt=req.attempt, await_survivors=True).ByteSize()
            return
        if ORDER.index(sa.stage if sa.stage in ORDER else "done") < ORDER.index(stage):
            raise Refusal(FAILED, f"round {req.round} is in secure-aggregation stage {sa.stage!r}, not yet {stage!r}")
        if sa.stage != stage or self.phase != "open":
            if client not in {"keys": sa.keys, "shares": sa.bundles, "unmask": sa.unmasks}[stage]:
                o.left_out.add(client)  # it came after its stage: no new task of this attempt for it
            return  # a repeat after the stage closed: its outcome answers it
        message = getattr(req, kind)
        try:
            {"keys": sa.add_keys, "shares": sa.add_shares, "unmask": sa.add_unmask}[kind](client, message)
        except (ProtocolError, ValueError) as e:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        if (client, kind) not in o.counted:
            o.counted.add((client, kind))
            o.private_up += pb.SecAggRequest(round=req.round, attempt=req.attempt, **{kind: message}).ByteSize()

    def _outcome(self, o: OpenRound, client: int, kind: str) -> pb.SecAggReply | None:
        """The stage's outcome for this client, None while it is not known yet."""
        if o is not self.open and o.failed:
            raise Refusal(FAILED, f"round {o.plan.round} (attempt {o.attempt + 1}) failed secure aggregation: "
                                  f"{o.failed}; it is drawn again")
        sa = o.secagg
        if sa.stage == "failed":
            raise Refusal(FAILED, f"round {o.plan.round} failed secure aggregation: {sa.why_failed}")
        at = ORDER.index(sa.stage)
        if kind == "keys" and at > ORDER.index("keys"):
            if client not in sa.keys:
                raise Refusal(FAILED, "this client's keys came after the roster closed")
            reply = pb.SecAggReply(roster=sa.roster(client))
        elif kind == "shares" and at > ORDER.index("shares"):
            if client not in sa.bundles:
                raise Refusal(FAILED, "this client's shares came after the share stage closed")
            reply = pb.SecAggReply(inbox=sa.inbox(client))
        elif kind == "await_survivors" and at > ORDER.index("masked"):
            if client not in sa.masked:
                raise Refusal(FAILED, "this client's masked vector came after the stage closed")
            reply = pb.SecAggReply(survivors=sa.survivors())
        elif kind == "unmask" and client in sa.unmasks:
            reply = pb.SecAggReply(done=True)
        elif kind == "unmask" and sa.stage == "done":
            raise Refusal(FAILED, "the round was unmasked without this client's shares (they came too late)")
        else:
            return None
        if (client, "reply-" + kind) not in o.counted:
            o.counted.add((client, "reply-" + kind))
            o.private_down += reply.ByteSize()
        return reply

