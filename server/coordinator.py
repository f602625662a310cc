"""The coordinator's state machine: admission, rounds (open, deadline, quorum, close), the wire form of the
log, and resume from SQLite. It runs on one asyncio loop; the heavy part of closing a round (aggregation,
applying the update to the held model, evaluation) runs in a worker thread while new submissions are refused.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import secrets
import sys
import time

import grpc

from fedseed import rng_spec, wire
from fedseed.config import Config, to_dict
from fedseed.roundlog import RoundLog
from fedseed.seeds import sample_clients
from fedseed.server.accounting import Traffic, progress_line, round_metrics, run_summary
from fedseed.server.config import ServerSection
from fedseed.server.model_host import ModelHost
from fedseed.server.registry import ClientEntry, Registry, load_allow_list
from fedseed.server.round_wire import RoundWire
from fedseed.server.rounds import OpenRound, Refusal, check_result, now_ms
from fedseed.strategies.base import ClientResult, GlobalUpdate, RoundPlan, scheduled_lr
from fedseed.v1 import coordinator_pb2 as pb

MAX_INLINE_ROUNDS = 2  # a client further behind is sent to SyncLog (merged catch-up)
MAX_SAMPLES = 1 << 40
FAILED = grpc.StatusCode.FAILED_PRECONDITION


class Coordinator:
    def __init__(self, cfg: Config, sec: ServerSection) -> None:
        self.cfg, self.sec = cfg, sec
        self.out = pathlib.Path(sec.out)
        entries = load_allow_list(sec.clients, cfg.federation.num_clients)
        self.host = ModelHost(cfg, hold_model=sec.hold_model)  # fails on a bad model before anything is written
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = RoundLog(self.out / "log.sqlite")
        self._check_or_write_meta()
        self.registry = Registry(self.log.db, entries)
        self.run_id, self.config_json = self.log.meta("run_id"), json.dumps(to_dict(cfg))
        self.strategy = self.host.strategy
        self.min_clients = sec.min_clients or cfg.federation.clients_per_round
        self.quorum = sec.quorum or max(1, cfg.federation.clients_per_round // 2)
        self.checksums: dict[int, str] = {0: self.host.base_checksum}
        self.rows: list[dict] = []
        self.wire = RoundWire(self.log, self.strategy)
        self.phase = "waiting"  # waiting | open | closing | finished
        self.waiting_since = time.time()
        self.open: OpenRound | None = None
        self.attempt = 0
        self.drawn_before: list[int] = []  # clients drawn in earlier attempts of the next round
        self.refused: dict[int, str] = {}  # accepted results of the next round refused at close, and why
        self.fault: BaseException | None = None  # closing failed past the point of no return: stop
        self.traffic: dict[int, Traffic] = {}
        self.changed = asyncio.Event()
        self.finished_at: float | None = None
        self.told_finished: set[str] = set()
        self.started = time.time()
        self._resume()
        if self.last >= cfg.run.rounds:
            self._finish()

    # ---- persistence -------------------------------------------------------------------------------------
    def _check_or_write_meta(self) -> None:
        config = to_dict(self.cfg)
        try:
            logged = self.log.meta("config")
        except KeyError:
            self.log.set_meta(config=config, layout=self.host.layout.to_json(), fingerprint=self.host.fingerprint,
                              spec_version=rng_spec.SPEC_VERSION, strategy=self.cfg.strategy.name,
                              run_id=secrets.token_hex(8), base_checksum=self.host.base_checksum)
            return
        if json.loads(json.dumps(config)) != logged:
            raise ValueError(f"{self.out} holds a run with a different configuration; choose another server.out")
        if self.log.meta("fingerprint") != self.host.fingerprint:
            raise ValueError(f"{self.out} holds a run of another model (layout fingerprint differs)")

    def _resume(self) -> None:
        """Replay the log: the held model catches up, coordinator-side strategy state is rebuilt, and the open
        round's accepted results come back from the pending table."""
        self.last = self.log.last_round()
        for r in range(1, self.last + 1):
            results = self.log.client_results(r)
            plan = self.strategy.configure_round(r, [res.client for res in results])
            self.strategy.observe(plan, results)
            self.checksums[r] = self.log.checksum(r)
        self.host.catch_up([self.log.update(r) for r in range(1, self.last + 1)], self.checksums.get(self.last, ""))
        self.pending = {res.client: res for res in self.log.pending(self.last + 1)}
        self.refused = self.log.dropped(self.last + 1)
        if self.last or self.pending:
            print(f"fedseed server: resumed from {self.out / 'log.sqlite'}: {self.last} of {self.cfg.run.rounds} "
                  f"rounds logged, {len(self.pending)} accepted results of round {self.last + 1}", file=sys.stderr)
        self._reopen()
        try:
            row0 = self.log.meta("round0")
        except KeyError:
            row0 = {"round": 0, "clients": 0, **self.host.evaluate(), "checksum": self.host.base_checksum}
            self.log.set_meta(round0=row0)
        self.rows = [row0, *self.log.metrics()]
        with open(self.out / "metrics.jsonl", "w", encoding="utf-8") as f:  # rebuilt from the log on resume
            f.writelines(json.dumps(row) + "\n" for row in self.rows)

    def _reopen(self) -> None:
        """Reopen the round that was open when the coordinator stopped, with the same draw and its accepted
        results, and a fresh deadline (its clients need time to reconnect)."""
        try:
            was = self.log.meta("open_round")
        except KeyError:
            return
        if not isinstance(was, dict) or was.get("round") != self.last + 1:
            return
        self.attempt, self.drawn_before = int(was["attempt"]), list(was["drawn_before"])
        plan = self.strategy.configure_round(self.last + 1, list(was["clients"]))
        self._open_plan(plan, persist=False)
        print(f"fedseed server: reopened round {plan.round} (attempt {self.attempt + 1}) with "
              f"{len(self.open.results)} of {len(plan.clients)} results accepted before the restart", file=sys.stderr)

    # ---- helpers -----------------------------------------------------------------------------------------
    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def count(self, method: str, up: int, down: int) -> None:
        self.traffic.setdefault(self.last + 1, Traffic()).add(method, up, down)

    def lr(self, round_idx: int) -> float:
        s = self.cfg.strategy
        return scheduled_lr(s.lr, s.lr_schedule, round_idx, self.cfg.run.rounds)

    def run_config(self, entry: ClientEntry) -> pb.RunConfig:
        return pb.RunConfig(run_id=self.run_id, strategy=self.cfg.strategy.name, config_json=self.config_json,
                            direction_kind=self.cfg.strategy.direction,
                            codec=self.cfg.strategy.codec, last_round=self.last, client_index=entry.index)

    def wire_round(self, r: int, omit: int | None) -> pb.GlobalUpdate:
        return self.wire.round(r, self.checksums.get(r, ""), self.lr(r), omit)

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
        self._learn_checksum(entry, req.applied_round, req.state_checksum, "state_checksum")
        until = time.monotonic() + min(req.wait_ms, self.sec.max_wait_ms) / 1000
        reg = self.registry
        reg.in_call[entry.id] = reg.in_call.get(entry.id, 0) + 1
        try:
            while True:
                task = self._task_for(entry, req.applied_round, req.held_round)
                remaining = until - time.monotonic()
                if task.WhichOneof("kind") is not None or remaining <= 0:
                    if task.WhichOneof("kind") is None:
                        task.wait.retry_after_ms = 0
                    return task
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
                and entry.index not in o.results and time.time() < o.deadline):
            task.round.round = o.plan.round
            task.round.lr = o.plan.lr
            task.round.broadcast = self.strategy.encode_broadcast(o.plan)
            task.round.deadline_ms = int(o.deadline * 1000)
            task.round.state_checksum = wire.checksum_bytes(o.start_checksum)
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
        result = ClientResult(r, entry.index, req.payload, req.num_samples, float(req.train_loss), req.skipped_steps)
        check_result(self.strategy, o.plan, result, MAX_SAMPLES, self.host.aggregate_checked)
        if len(req.start_checksum) != wire.CHECKSUM_BYTES:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"start_checksum must be {wire.CHECKSUM_BYTES} bytes")
        self._learn_checksum(entry, r - 1, req.start_checksum, "start_checksum")
        o.start_checksum = self.checksums.get(r - 1, "")
        self.registry.stage_nonces()  # committed together with the update
        self.log.add_pending(result)
        o.results[entry.index] = result
        if o.complete():
            self._begin_close()
        return pb.UpdateReply(round=r)

    def sync(self, entry: ClientEntry, req: pb.SyncRequest) -> list[pb.GlobalUpdate]:
        self.registry.require_admitted(entry)
        if req.from_round > self.last:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT,
                          f"from_round {req.from_round} is beyond the log's last round {self.last}")
        rounds = range(req.from_round + 1, self.last + 1)
        if req.merged and len(rounds) > 1:
            updates = [self.log.update(r) for r in rounds]
            return [wire.merged(updates, self.checksums.get(self.last, ""), getattr(self.strategy, "pool", None))]
        return [self.wire_round(r, None) for r in rounds]

    def heartbeat(self, entry: ClientEntry) -> pb.HeartbeatReply:
        return pb.HeartbeatReply(server_time_ms=now_ms(), current_round=self.last + 1)

    # ---- round lifecycle (driven by tick) ------------------------------------------------------------------
    def tick(self) -> None:
        if self.fault is not None:
            raise RuntimeError(f"closing round {self.last + 1} failed: {self.fault}") from self.fault
        self.registry.flush()
        if self.phase == "waiting":
            self._try_open()
        elif self.phase == "open" and self.open is not None and time.time() >= self.open.deadline:
            if len(self.open.results) >= self.quorum:
                self._begin_close()
            else:  # too few results: draw again among the clients online now, keeping every accepted result
                self._redraw(self.open)

    def _redraw(self, o: OpenRound) -> None:
        self.attempt = o.attempt + 1
        self.drawn_before = sorted(set(o.drawn_before) | set(o.plan.clients))
        self.pending = dict(o.results)  # a client's result depends only on (state, round, client)
        self.phase, self.open, self.waiting_since = "waiting", None, time.time()
        self._try_open()

    def _try_open(self) -> None:
        r = self.last + 1
        online = self.registry.online(self.sec.heartbeat_timeout_s)
        if len(online) < self.min_clients or not self._scheduled_present(r, online):
            return
        keep = sorted(self.pending)  # clients whose results were accepted stay in the round
        others = [c for c in online if c not in self.pending]
        k = self.cfg.federation.clients_per_round
        drawn = (sample_clients(self.cfg.run.seed, r, self.attempt, others, max(0, k - len(keep)))
                 if self.strategy.samples_clients else others)
        try:
            plan = self.strategy.configure_round(r, sorted(keep + drawn))
        except ValueError:
            return  # e.g. no one-byte participant is active yet
        if len(plan.clients) < min(self.min_clients, k) or not set(keep) <= set(plan.clients):
            return
        self._open_plan(plan, persist=True)

    def _open_plan(self, plan: RoundPlan, persist: bool) -> None:
        now = time.time()
        self.open = OpenRound(plan, self.attempt, now, now + self.sec.round_deadline_s,
                              self.checksums.get(plan.round - 1, ""), drawn_before=self.drawn_before)
        self.open.results = {c: res for c, res in self.pending.items() if c in plan.clients}
        self.pending = {}
        if persist:
            self.log.set_meta(open_round=self.open.persisted())
        self.phase = "open"
        self.notify()
        if self.open.complete():
            self._begin_close()

    def _scheduled_present(self, r: int, online: list[int]) -> bool:
        """Strategies without sampling (one-byte SPSA) wait for every participant scheduled for the step, up to
        the round deadline; after that the step goes ahead with those online."""
        if self.strategy.samples_clients or time.time() - self.waiting_since >= self.sec.round_deadline_s:
            return True
        try:
            scheduled = self.strategy.configure_round(r, sorted(e.index for e in self.registry.entries.values()))
        except ValueError:
            return True
        return set(scheduled.clients) <= set(online)

    def _begin_close(self) -> None:
        self.phase = "closing"
        self.notify()
        asyncio.get_running_loop().create_task(self._close(self.open))

    async def _close(self, o: OpenRound) -> None:
        t0 = time.time()
        try:
            kept, refused, closed = await asyncio.get_running_loop().run_in_executor(
                None, self.host.close_admissible, o.plan, o.sorted_results(), o.plan.round == self.cfg.run.rounds)
        except BaseException as e:  # noqa: BLE001 -- the held state may be half changed: stop, resume from the log
            self.fault = e
            return
        for client, reason in refused.items():  # recorded, so a restart does not reload them
            self.log.drop_pending(o.plan.round, client, reason)
            del o.results[client]
            self.refused[client] = reason
            print(f"fedseed server: round {o.plan.round}: client {client}'s result dropped, {reason}", file=sys.stderr)
        if closed is None:
            self._redraw(o)
            return
        self._commit(o, kept, *closed, time.time() - t0)

    def _commit(self, o: OpenRound, results: list[ClientResult], update: GlobalUpdate, checksum: str,
                evaluated: dict, close_s: float) -> None:
        r = o.plan.round
        metrics = round_metrics(o, results, self.traffic.pop(r, Traffic()), evaluated, checksum, close_s,
                                o.why_dropped(self.refused))
        self.log.append(update, results, checksum, metrics)
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")
        self.rows.append(metrics)
        self.checksums[r] = checksum
        self.last, self.open, self.attempt, self.drawn_before, self.refused = r, None, 0, [], {}
        print(progress_line(metrics, self.cfg.run.rounds), file=sys.stderr)
        if r >= self.cfg.run.rounds:
            self._finish()
        else:
            self.phase, self.waiting_since = "waiting", time.time()
            self._try_open()
        self.notify()

    def _finish(self) -> None:
        self.phase = "finished"
        self.finished_at = time.monotonic()
        self.write_summary()

    def write_summary(self) -> None:
        """summary.json; written when the last round closes and again at shutdown (a coordinator without the
        model learns the final checksum from the clients in between)."""
        summary = run_summary(self.cfg.strategy.name, self.rows, self.checksums.get(self.last, ""),
                              time.time() - self.started)
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    def done(self) -> bool:
        """Finished, and every admitted client has been told so (or linger_s has passed)."""
        if self.finished_at is None:
            return False
        told = self.registry.admitted <= self.told_finished
        return told or time.monotonic() - self.finished_at >= self.sec.linger_s
