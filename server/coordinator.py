"""The coordinator's state and its RPCs: admission, tasks, submissions, catch-up. The rules of a round live in
the run's round machine (``fedseed.round_machine``), shared with the simulation; the round lifecycle over time
(open, deadline, quorum, re-draw, close) is in ``lifecycle``. It runs on one asyncio loop; closing a round
(aggregation, applying the update to the held model, evaluation) runs in a worker thread while new submissions
are refused.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import grpc

from fedseed import rng_spec, wire
from fedseed.config import Config, to_dict
from fedseed.private import open_private
from fedseed.progress import Progress
from fedseed.records import RoundRecord
from fedseed.resume import check_resumable, restore, start_log
from fedseed.round_machine import ResultRefused, RoundMachine
from fedseed.roundlog import RoundLog
from fedseed.server.accounting import Traffic
from fedseed.server.config import ServerSection, coordinator_identity
from fedseed.server.lifecycle import RoundLifecycle
from fedseed.server.limits import ClientLimits, message_limit
from fedseed.server.model_host import ModelHost
from fedseed.server.private_rounds import PrivateRounds
from fedseed.server.registry import ClientEntry, Registry, load_allow_list
from fedseed.server.round_wire import RoundWire
from fedseed.server.rounds import OpenRound, Refusal, now_ms
from fedseed.server.sync_reader import SyncReader
from fedseed.strategies.base import ClientResult
from fedseed.v1 import coordinator_pb2 as pb

T = TypeVar("T")
MAX_INLINE_ROUNDS = 2  # a client further behind is sent to SyncLog (merged catch-up)
FAILED = grpc.StatusCode.FAILED_PRECONDITION


class Coordinator(PrivateRounds, RoundLifecycle):
    def __init__(self, cfg: Config, sec: ServerSection) -> None:
        self.cfg, self.sec = cfg, sec
        self.out = pathlib.Path(sec.out)
        entries = load_allow_list(sec.clients, cfg.federation.num_clients)
        self.host = ModelHost(cfg, hold_model=sec.hold_model)  # fails on a bad model before anything is written
        secagg_clients = cfg.federation.clients_per_round if cfg.privacy.secure_aggregation else 0
        self.max_message_bytes = message_limit(sec, self.host.strategy, secagg_clients)
        self.limits = ClientLimits(sec)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = RoundLog(self.out / "log.sqlite")
        self.strategy = self.host.strategy
        fed = self.host.fed
        self.machine = RoundMachine(cfg, self.strategy, self.log, fed.state if fed else None,
                                    fed.evaluate if fed else None, fed.guard_loss if fed else None)
        self.config_json = json.dumps(to_dict(cfg))
        self.min_clients = sec.min_clients or cfg.federation.clients_per_round
        self.quorum = sec.quorum or max(1, cfg.federation.clients_per_round // 2)
        self.wire = RoundWire(self.log, self.strategy)
        self.reader = SyncReader(self.out / "log.sqlite", self.strategy)
        self.phase = "waiting"  # waiting | open | closing | finished
        self.waiting_since = time.time()
        self.open: OpenRound | None = None
        self.attempt = 0
        self.drawn_before: list[int] = []  # clients drawn in earlier attempts of the next round
        self.first_opened = 0.0  # when the next round's first attempt opened (0: not yet)
        self.fault: BaseException | None = None  # closing failed past the point of no return: stop
        self.stopped: str | None = None  # why the run ended before its last round (its privacy budget)
        self.traffic: dict[int, Traffic] = {}
        self.changed = asyncio.Event()
        self.finished_at: float | None = None
        self.told_finished: set[str] = set()
        self.started = time.time()
        self.records = self._start_or_resume()
        self.progress = Progress(cfg.run.rounds, True, prefix="fedseed server: ")
        self.progress.resume_from(self.records)
        self.identity = coordinator_identity(sec)
        self.registry = Registry(self.log.db, entries, self.run_id, self.identity, sec.clients,
                                 cfg.federation.num_clients)
        self.last = self.records[-1].round
        # the log's checksums: a coordinator without the model learns them after a round's record is written
        self.checksums = {r: self.log.checksum(r) for r in range(1, self.last + 1)} | {0: self.host.base_checksum}
        self.pending = {res.client: res for res in self.log.pending(self.last + 1)}
        self.refused = self.log.dropped(self.last + 1)  # accepted results of the next round refused at close, and why
        if self.last or self.pending:
            print(f"fedseed server: resumed from {self.out / 'log.sqlite'}: {self.last} of {cfg.run.rounds} "
                  f"rounds logged, {len(self.pending)} accepted results of round {self.last + 1}", file=sys.stderr)
        self._reopen()
        if self.last >= cfg.run.rounds:
            self._finish()

    def _start_or_resume(self) -> list[RoundRecord]:
        """A new run's log and zero-shot record, or the resumed run's records with its state restored."""
        try:
            self.log.meta("config")
        except KeyError:
            layout = self.host.layout
            self.run_id = start_log(self.log, self.cfg, self.host.fingerprint, layout.to_json(),
                                    self.host.base_checksum)
            zero = RoundRecord(round=0, evals=self.host.evaluate(), checksum=self.host.base_checksum)
            self.log.set_meta(round0=zero.to_json())
            self.machine.resolve_lr()
            records = [zero]
        else:
            check_resumable(self.log, self.cfg, self.host.fingerprint)
            self.run_id = str(self.log.meta("run_id"))
            self.machine.resolve_lr()  # before the state is restored
            records = restore(self.machine, self.log)
            self.count_unsaved_releases(records[-1].round)
        with open_private(self.out / "metrics.jsonl") as f:  # rebuilt from the log on resume
            f.writelines(json.dumps(r.to_json()) + "\n" for r in records)
        return records

    # ---- helpers -----------------------------------------------------------------------------------------
    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def count(self, method: str, up: int, down: int) -> None:
        self.traffic.setdefault(self.last + 1, Traffic()).add(method, up, down)

    def run_config(self, entry: ClientEntry) -> pb.RunConfig:
        return pb.RunConfig(run_id=self.run_id, strategy=self.cfg.strategy.name, config_json=self.config_json,
                            direction_kind=self.cfg.strategy.direction,
                            codec=self.cfg.strategy.codec, last_round=self.last, client_index=entry.index,
                            coordinator=self.identity)

    def wire_round(self, r: int, omit: int | None) -> pb.GlobalUpdate:
        return self.wire.round(r, self.checksums.get(r, ""), omit)

    def _learn_checksum(self, entry: ClientEntry, round_idx: int, checksum: bytes, what: str) -> None:
        """Compare a client's checksum with the federation's; a coordinator without the model adopts the first."""
        if not checksum:
            return
        if len(checksum) != wire.CHECKSUM_BYTES:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"{what} must be {wire.CHECKSUM_BYTES} bytes")
        known = self.checksums.get(round_idx, "")
        if not known:
            self.checksums[round_idx] = checksum.hex()
            if round_idx:
                self.log.set_checksum(round_idx, checksum.hex())
        elif checksum.hex() != known:
            raise Refusal(FAILED, f"client {entry.id}: state after round {round_idx} has checksum {checksum.hex()}, "
                                  f"the federation's is {known}: the client forked; it must not train")

    # ---- RPCs --------------------------------------------------------------------------------------------
    def join(self, entry: ClientEntry, req: pb.JoinRequest) -> pb.JoinReply:
        run = self.run_config(entry)
        if not req.layout.fingerprint:
            return pb.JoinReply(run=run, admitted=False)
        if req.layout.spec_version != rng_spec.SPEC_VERSION:
            raise Refusal(FAILED, f"client uses randomness spec {req.layout.spec_version!r}, "
                                  f"the run uses {rng_spec.SPEC_VERSION!r}")
        if req.layout.fingerprint != self.host.fingerprint:
            raise Refusal(FAILED, f"layout fingerprint {req.layout.fingerprint[:16]}… differs from the run's "
                                  f"{self.host.fingerprint[:16]}…: wrong model, weights or trainable set")
        if req.codecs and self.cfg.strategy.codec not in req.codecs:
            raise Refusal(FAILED, f"the run uses codec {self.cfg.strategy.codec!r}; client offers {list(req.codecs)}")
        if req.direction_kinds and self.cfg.strategy.direction not in req.direction_kinds:
            raise Refusal(FAILED, f"the run uses {self.cfg.strategy.direction!r} directions; client offers "
                                  f"{list(req.direction_kinds)}")
        self.registry.admit(entry.id)
        self.notify()
        return pb.JoinReply(run=run, admitted=True)

    async def fetch(self, entry: ClientEntry, req: pb.FetchTaskRequest) -> pb.Task:
        self.registry.require_admitted(entry)
        if req.applied_round > self.last:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT,
                          f"applied_round {req.applied_round} is beyond the log's last round {self.last}")
        if req.held_round > self.cfg.run.rounds:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"held_round {req.held_round} is not a round of the run")
        reg = self.registry
        self.limits.check_long_poll(entry.id, reg.in_call.get(entry.id, 0))  # before anything is learnt
        self._learn_checksum(entry, req.applied_round, req.state_checksum, "state_checksum")
        task = await self.long_poll(entry, req.wait_ms,
                                    lambda: self._task_for(entry, req.applied_round, req.held_round),
                                    lambda t: t.WhichOneof("kind") is not None)
        if task.WhichOneof("kind") is None:
            task.wait.retry_after_ms = 0
        return task

    async def long_poll(self, entry: ClientEntry, wait_ms: int, poll: Callable[[], T],
                        ready: Callable[[T], bool]) -> T:
        """poll() until its answer is ready or the client's wait (at most server.max_wait_ms) is over, waking on
        every change of the coordinator's state; the last answer."""
        reg = self.registry
        until = time.monotonic() + min(wait_ms, self.sec.max_wait_ms) / 1000
        reg.in_call[entry.id] = reg.in_call.get(entry.id, 0) + 1
        try:
            while True:
                answer = poll()
                remaining = until - time.monotonic()
                if ready(answer) or remaining <= 0:
                    return answer
                changed = self.changed
                try:
                    await asyncio.wait_for(changed.wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            reg.in_call[entry.id] -= 1
            reg.last_seen[entry.id] = time.monotonic()

    def _task_for(self, entry: ClientEntry, applied: int, held: int) -> pb.Task:
        """The task now, or an empty Task (no kind set) when the client should keep waiting."""
        last = self.last
        if last - applied > MAX_INLINE_ROUNDS:
            return pb.Task(sync=pb.SyncNeeded(last_round=last))
        task = pb.Task(updates=[self.wire_round(r, entry.index if held == r else None)
                                for r in range(applied + 1, last + 1)])
        if self.phase == "finished":
            task.finished.final_round = last
            task.finished.final_checksum = wire.checksum_bytes(self.checksums.get(last, ""))
            if task.finished.final_checksum and applied == last:
                self.told_finished.add(entry.id)  # it will verify and stop; without a checksum it asks again
            return task
        o = self.open
        if (self.phase == "open" and o is not None and entry.index in o.plan.clients
                and entry.index not in o.results and entry.index not in o.left_out and time.time() < o.deadline):
            private = self.private_task(o) if self.private else None
            task.round.CopyFrom(wire.round_task(o.plan, self.strategy.encode_broadcast(o.plan), o.start_checksum,
                                                int(o.deadline * 1000), private).round)
        return task

    def submit(self, entry: ClientEntry, req: pb.UpdateRequest) -> pb.UpdateReply:
        self.registry.require_admitted(entry)
        o, r = self.open, req.round
        if self.phase == "finished" or r > self.cfg.run.rounds or r == 0:
            raise Refusal(FAILED, f"round {r} is not a round of this run (rounds 1..{self.cfg.run.rounds})")
        if r <= self.last or (r == self.last + 1 and self.phase == "closing"):
            raise Refusal(FAILED, f"round {r} is closed: the update arrived after the round's deadline or quorum")
        if o is None or self.phase != "open" or r != o.plan.round:
            raise Refusal(FAILED, f"round {r} is not open (next round: {self.last + 1}, not yet opened)")
        if entry.index not in o.plan.clients:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, f"client {entry.id} is not selected for round {r}")
        if time.time() >= o.deadline:
            raise Refusal(grpc.StatusCode.DEADLINE_EXCEEDED, f"round {r}'s deadline has passed")
        if entry.index in o.results:
            raise Refusal(grpc.StatusCode.ALREADY_EXISTS, f"client {entry.id} already submitted round {r}")
        if len(req.start_checksum) != wire.CHECKSUM_BYTES:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"start_checksum must be {wire.CHECKSUM_BYTES} bytes")
        if self.private:  # a masked or quantized vector: checked by its protocol, never logged
            self._learn_checksum(entry, r - 1, req.start_checksum, "start_checksum")
            o.results[entry.index] = self.submit_private(o, entry.index, req)
            o.start_checksum = self.checksums.get(r - 1, "")
            self.registry.flush()
            self.private_tick(o)
            return pb.UpdateReply(round=r)
        result = ClientResult(r, entry.index, req.payload, req.num_samples, float(req.train_loss), req.skipped_steps)
        try:
            self.machine.check(o.plan, result)
        except ResultRefused as e:
            # kept in memory only, to say in the round's record why the client's result is missing
            self.refused[entry.index] = f"its result was refused: {e}"
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        self._learn_checksum(entry, r - 1, req.start_checksum, "start_checksum")
        o.start_checksum = self.checksums.get(r - 1, "")
        self.registry.stage_nonces()  # committed together with the update
        self.log.add_pending(result)
        o.results[entry.index] = result
        if o.complete():
            self._begin_close()
        return pb.UpdateReply(round=r)

    async def sync(self, entry: ClientEntry, req: pb.SyncRequest) -> list[pb.GlobalUpdate]:
        self.registry.require_admitted(entry)
        if req.from_round > self.last:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT,
                          f"from_round {req.from_round} is beyond the log's last round {self.last}")
        self.limits.take_sync(entry.id)
        # rounds up to self.last are committed, and checksums are copied here: the worker reads nothing that changes
        return await self.reader.build(req.from_round + 1, self.last, req.merged, dict(self.checksums))

    def heartbeat(self, entry: ClientEntry) -> pb.HeartbeatReply:
        return pb.HeartbeatReply(server_time_ms=now_ms(), current_round=self.last + 1)
