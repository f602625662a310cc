"""An edge client's part in a private round: its scalars clipped, quantized and (distributed DP) noised into a
field vector; with secure aggregation, keys, shares, the masked vector and its part of the unmasking through
SecAgg calls. Nothing individual leaves the client in the clear: the UpdateRequest carries the vector alone,
with no sample count, loss or skipped steps."""

from __future__ import annotations

import grpc
from google.protobuf.message import Message

from fedseed import wire
from fedseed.private_round import PrivateRun, masked_result, secure_rng
from fedseed.secagg import field as fld
from fedseed.secagg.protocol import SecAggClient
from fedseed.strategies.base import ClientResult, RoundPlan
from fedseed.v1 import coordinator_pb2 as pb

MAX_POLLS = 10_000  # each poll waits up to the client's wait_ms; the coordinator's stage timeouts end a round first


class PrivateRoundRefused(Exception):
    """The round went on without this client (a stage closed before its message, or the round was drawn again)."""


class PrivateSubmission:
    """The private half of the EdgeClient (which provides session, cfg, fed, index, run_id, checksum, sec)."""

    def private_run(self) -> PrivateRun:
        if getattr(self, "_private", None) is None:
            self._private = PrivateRun(self.cfg, self.fed.strategy)
        return self._private

    def prepare_private(self, task: pb.RoundTask, plan: RoundPlan) -> SecAggClient | None:
        """Before local work: check the round's parameters; with secure aggregation, advertise keys and exchange
        shares (raises PrivateRoundRefused, or grpc.RpcError, when the round goes on without this client)."""
        private, spec = self.private_run(), task.private
        if (spec.length, spec.levels) != (private.length, private.quantizer.levels):
            raise RuntimeError(f"the coordinator's private round ({spec.length} elements, {spec.levels} levels) "
                                f"differs from this run's ({private.length}, {private.quantizer.levels})")
        if not self.cfg.privacy.secure_aggregation:
            return None
        agent = SecAggClient(self.index, private.params(self.run_id, plan, spec.attempt))
        roster = self._stage(task, spec.attempt, keys=agent.keys()).roster
        agent.receive(self._stage(task, spec.attempt, shares=agent.shares(roster)).inbox)
        return agent

    def finish_private(self, task: pb.RoundTask, plan: RoundPlan, result: ClientResult,
                       agent: SecAggClient | None) -> None:
        """After local work: submit the vector (masked), then take part in unmasking the round's sum."""
        vector = self.private_run().client_vector(plan, result, secure_rng())
        if agent is None:
            return self._submit(masked_result(task.round, self.index, fld.pack(vector)))
        self._submit(masked_result(task.round, self.index, agent.mask(vector)))
        survivors = self._stage(task, task.private.attempt, await_survivors=True).survivors
        self._stage(task, task.private.attempt, unmask=agent.unmask(survivors))

    def _submit(self, result: ClientResult) -> None:
        self.session.call("SubmitUpdate", wire.update_request(result, self.checksum))

    def _stage(self, task: pb.RoundTask, attempt: int, **message: Message | bool) -> pb.SecAggReply:
        """One stage's SecAgg call, long-polled until the coordinator closes the stage."""
        request = pb.SecAggRequest(round=task.round, attempt=attempt, wait_ms=self.sec.wait_ms, **message)
        for _ in range(MAX_POLLS):
            try:
                reply = self.session.call("SecAgg", request, timeout=self.sec.wait_ms / 1000 + 120)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    raise PrivateRoundRefused(e.details()) from None
                raise
            if reply.WhichOneof("stage") != "wait":
                return reply
        raise PrivateRoundRefused(f"round {task.round}'s secure aggregation never closed its stage")
