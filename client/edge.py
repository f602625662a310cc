"""The edge client's loop: join, then pull a task -> local work -> submit -> apply the global update -> verify
the checksum, catching up from the log whenever it was away. It never trains on a state whose checksum
disagrees with the federation's."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import threading
import time
from typing import TextIO

import grpc

from fedseed import rng_spec, wire
from fedseed.client.config import ClientSection
from fedseed.client.private_submit import PrivateRoundRefused, PrivateSubmission
from fedseed.client.session import Session
from fedseed.codecs import CODECS
from fedseed.config import Config, ConfigError, build_config, device_problem
from fedseed.data.sources import load_dataset
from fedseed.federation import Federation, build_federation
from fedseed.records import ClientRoundRecord, ClientSummary
from fedseed.secagg.crypto import SecAggError
from fedseed.strategies.base import ClientResult, RoundPlan
from fedseed.v1 import coordinator_pb2 as pb

SOFTWARE = "fedseed 0.1.0 (python)"
# a submission refused for its round (too late, not drawn, or a result the coordinator cannot aggregate): the
# client records why and goes on with the next round
REFUSED = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.PERMISSION_DENIED,
           grpc.StatusCode.INVALID_ARGUMENT)


class ForkError(RuntimeError):
    """This client's state disagrees with the federation's checksum: it must stop, not train."""


def run_config_here(doc: dict, sec: ClientSection) -> Config:
    """The run's configuration with this client's own device and forward dtype (the run's state does not depend on
    them); a run device this machine lacks is refused naming the key that fixes it."""
    model = doc.get("model") if isinstance(doc.get("model"), dict) else None
    for key in ("device", "compute_dtype"):
        if getattr(sec, key) and model is not None:
            model[key] = getattr(sec, key)
    if model is not None and not sec.device and (problem := device_problem(str(model.get("device", "cpu")))):
        raise ConfigError(f"the run's model.device {problem}: set client.device (e.g. \"cpu\") in this client's "
                          "[client] table")
    return build_config(doc)


class EdgeClient(PrivateSubmission):
    def __init__(self, target: str, sec: ClientSection) -> None:
        self.sec = sec
        self.session = Session(target, sec)
        self.out = pathlib.Path(sec.out)
        self.applied = 0
        self.held: ClientResult | None = None
        self.rows: list[ClientRoundRecord] = []
        # (round, starting checksum) of a round whose result the coordinator refused: a result depends only on
        # the state, the round and the client, so computed again (in any attempt) it would be refused again
        self.refused_task: tuple[int, bytes] | None = None

    # ---- setup -------------------------------------------------------------------------------------------
    def join(self) -> None:
        offer = {"codecs": list(CODECS), "direction_kinds": list(rng_spec.KINDS), "software": SOFTWARE}
        reply = self.session.call("Join", pb.JoinRequest(**offer))  # a hello: the run, signed for no run yet
        self.session.bind(reply.run)
        cfg = run_config_here(json.loads(reply.run.config_json), self.sec)
        if self.sec.threads:
            cfg.model.threads = self.sec.threads
        self.cfg, self.index, self.run_id = cfg, reply.run.client_index, reply.run.run_id
        self.fed = build_federation(cfg)
        if self.sec.data:
            self._use_local_data(self.fed)
        layout = pb.LayoutFingerprint(spec_version=rng_spec.SPEC_VERSION,
                                      fingerprint=self.fed.state.layout.fingerprint())
        reply = self.session.call("Join", pb.JoinRequest(layout=layout, **offer))
        if not reply.admitted:
            raise RuntimeError("the coordinator did not admit this client")
        self.checksum = self.fed.state.checksum()

    def _use_local_data(self, fed: Federation) -> None:
        # rows in the run's format; text/label rows may name labels by the run's label words
        ds = load_dataset("jsonl", self.sec.data, self.cfg.data.label_words or fed.dataset.label_words or None)
        fed.use_local_data(ds, self.index)

    # ---- following the log -------------------------------------------------------------------------------
    def apply(self, msg: pb.GlobalUpdate) -> None:
        if msg.round <= self.applied:
            return
        first = msg.first_round if msg.merged else msg.round
        if first != self.applied + 1:
            raise ForkError(f"update for rounds {first}..{msg.round} does not follow round {self.applied}")
        wire.apply_message(msg, self.fed.strategy, self.fed.state, self.held)
        self.applied = msg.round
        self.checksum = self.fed.state.checksum()
        if msg.checksum and msg.checksum.hex() != self.checksum:
            raise ForkError(f"state after round {msg.round} has checksum {self.checksum}, the coordinator logged "
                            f"{msg.checksum.hex()}: stopping rather than training on a forked state")

    def catch_up(self) -> None:
        # a compact state rounds each round's coefficients per exponent class, so it cannot take the coordinator's
        # sums in 2**-56 units: it asks for the rounds one by one (a few seeds each, smaller than a K-vector for
        # FedKSeed unless it was away for hundreds of rounds)
        merged = self.fed.state.format != "compact"
        for msg in self.session.stream("SyncLog", pb.SyncRequest(from_round=self.applied, merged=merged)):
            self.apply(msg)

    # ---- the loop ----------------------------------------------------------------------------------------
    def work(self, task: pb.RoundTask) -> None:
        if task.state_checksum and task.state_checksum.hex() != self.checksum:
            raise ForkError(f"round {task.round} starts from checksum {task.state_checksum.hex()}, but this "
                            f"client's state after round {self.applied} is {self.checksum}")
        strategy, state = self.fed.strategy, self.fed.state
        plan = RoundPlan(task.round, [self.index], task.lr, strategy.decode_broadcast(task.broadcast))
        private = task.HasField("private")
        result, local_s = None, 0.0
        try:
            # a private round's keys and shares are exchanged before local work, which may outlast their stages
            agent = self.prepare_private(task, plan) if private else None
            t0 = time.time()
            result = strategy.local_work(self.fed.context(task.round, self.index), plan, self.index)
            state.restore()
            local_s = time.time() - t0
            if private:
                self.finish_private(task, plan, result, agent)
            else:
                self.session.call("SubmitUpdate", wire.update_request(result, self.checksum))
            status = "accepted"
        except (PrivateRoundRefused, SecAggError) as e:  # e.g. a neighbour's unusable key: the round goes on
            status = f"refused: {e}"
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.ALREADY_EXISTS:
                status = "accepted"  # an earlier attempt landed before the connection broke
            elif e.code() in REFUSED:
                status = f"refused: {e.code().name}: {e.details()}"
                if e.code() == grpc.StatusCode.INVALID_ARGUMENT and not private:
                    self.refused_task = (task.round, task.state_checksum)
            else:
                raise
        # a private round's update always comes as coefficients: there is no own result to hold
        self.held = result if status == "accepted" and not private else None
        loss = result.train_loss if result is not None else float("nan")
        self.rows.append(ClientRoundRecord(task.round, status, loss, round(local_s, 3), self.checksum))

    def run(self) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        self.join()
        beat = threading.Thread(target=self._heartbeats, daemon=True)
        self._stop = threading.Event()
        beat.start()
        try:
            return self._loop()
        finally:
            self._stop.set()
            beat.join()  # a heartbeat in flight must end before the channel closes
            self.session.close()

    def _loop(self) -> dict:
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as metrics:
            return self._follow(metrics)

    def _follow(self, metrics: TextIO) -> dict:
        mark = (0, 0)
        while True:
            request = pb.FetchTaskRequest(applied_round=self.applied, wait_ms=self.sec.wait_ms,
                                          state_checksum=bytes.fromhex(self.checksum),
                                          held_round=self.held.round if self.held else 0)
            task = self.session.call("FetchTask", request, timeout=self.sec.wait_ms / 1000 + 120)
            for msg in task.updates:
                self.apply(msg)
            kind = task.WhichOneof("kind")
            if kind == "sync":
                self.catch_up()
            elif kind == "finished":
                if not task.finished.final_checksum and task.finished.final_round == self.applied:
                    continue  # a coordinator without the model: report our checksum, get the agreed one back
                return self._finish(task.finished)
            elif (kind == "round" and not task.round.HasField("private")
                  and (task.round.round, task.round.state_checksum) == self.refused_task):
                # until the round moves on; at least a second, whatever the two clocks say of its deadline
                time.sleep(min(max(1.0, task.round.deadline_ms / 1000 - time.time()), self.sec.wait_ms / 1000))
            elif kind == "round":
                up, down = self.session.bytes_up - mark[0], self.session.bytes_down - mark[1]
                mark = (self.session.bytes_up, self.session.bytes_down)
                self.work(task.round)
                row = dataclasses.replace(self.rows[-1], bytes_up_before=up, bytes_down_before=down)
                metrics.write(json.dumps(dataclasses.asdict(row)) + "\n")
                metrics.flush()

    def _finish(self, fin: pb.Finished) -> dict:
        if fin.final_round != self.applied:
            raise ForkError(f"the run finished at round {fin.final_round}, this client is at {self.applied}")
        if fin.final_checksum and fin.final_checksum.hex() != self.checksum:
            raise ForkError(f"final state after round {fin.final_round} has checksum {self.checksum}, the "
                            f"coordinator logged {fin.final_checksum.hex()}")
        summary = dataclasses.asdict(ClientSummary(
            self.sec.id, self.index, self.run_id, self.applied, self.checksum,
            sum(r.status == "accepted" for r in self.rows), self.session.bytes_up, self.session.bytes_down))
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        return summary

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.sec.heartbeat_s / 4):
            self.session.heartbeat()


def finished_before(sec: ClientSection) -> dict | None:
    """This client's summary of a run it saw to the end, if its folder holds one."""
    try:
        return json.loads((pathlib.Path(sec.out) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_client(target: str, sec: ClientSection) -> dict:
    return EdgeClient(target, sec).run()
