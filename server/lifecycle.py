"""A coordinator's rounds over time, driven by its tick: open a round when enough clients are online, close it
when every drawn client has reported or at the deadline with a quorum, draw it again (keeping every accepted
result) when short of one, and reopen the round that was open when the coordinator stopped. What a round is --
its draw, result checks, closing, record and log entry -- is the run's round machine."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING

from fedseed.accountant import BudgetExhausted
from fedseed.private import open_private, write_private_text
from fedseed.records import RunSummary
from fedseed.server.accounting import Traffic
from fedseed.server.rounds import OpenRound
from fedseed.strategies.base import RoundPlan

if TYPE_CHECKING:
    from fedseed.round_machine import ClosedRound


class RoundLifecycle:
    """The round half of the Coordinator (which provides log, machine, registry, strategy and the round state)."""

    def tick(self) -> None:
        if self.fault is not None:
            raise RuntimeError(f"closing round {self.last + 1} failed: {self.fault}") from self.fault
        self.registry.reload_if_changed()
        self.registry.flush()
        if self.phase == "waiting":
            self._try_open()
        elif self.phase == "open" and self.open is not None and self.private:
            self.private_tick(self.open)
        elif self.phase == "open" and self.open is not None and time.time() >= self.open.deadline:
            if len(self.open.results) >= self.quorum:
                self._begin_close()
            else:  # too few results: draw again among the clients online now, keeping every accepted result
                self._redraw(self.open)

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
        if self.private:  # the open attempt's secrets died with the coordinator: the clients start a new one
            self.attempt += 1
        self.first_opened = float(was.get("first_opened", 0.0))
        plan = self.strategy.configure_round(self.last + 1, list(was["clients"]))
        self._open_plan(plan, persist=self.private)
        print(f"fedseed server: reopened round {plan.round} (attempt {self.attempt + 1}) with "
              f"{len(self.open.results)} of {len(plan.clients)} results accepted before the restart", file=sys.stderr)

    def _redraw(self, o: OpenRound) -> None:
        self.attempt = o.attempt + 1
        self.drawn_before = sorted(set(o.drawn_before) | set(o.plan.clients))
        self.first_opened = o.first_opened
        # a client's result depends only on (state, round, client); a private one only means something in its attempt
        self.pending = {} if self.private else dict(o.results)
        self.phase, self.open, self.waiting_since = "waiting", None, time.time()
        self._try_open()

    def _try_open(self) -> None:
        r = self.last + 1
        online = self.registry.online(self.sec.heartbeat_timeout_s)
        if len(online) < self.min_clients or not self._scheduled_present(r, online):
            return
        keep = sorted(self.pending)  # clients whose results were accepted stay in the round
        try:
            plan = self.machine.draw(r, online, self.attempt, keep)
        except ValueError:
            return  # e.g. no one-byte participant is active yet
        except BudgetExhausted as e:
            self.stopped = str(e)
            print(f"fedseed server: {self.stopped}", file=sys.stderr)
            self._finish()
            return
        if len(plan.clients) < min(self.min_clients, self.cfg.federation.clients_per_round):
            return
        if not set(keep) <= set(plan.clients):
            return
        self._open_plan(plan, persist=True)

    def _open_plan(self, plan: RoundPlan, persist: bool) -> None:
        now = time.time()
        self.open = OpenRound(plan, self.attempt, now, now + self.sec.round_deadline_s,
                              self.checksums.get(plan.round - 1, ""), drawn_before=self.drawn_before,
                              first_opened=self.first_opened or now)
        self.open.results = {c: res for c, res in self.pending.items() if c in plan.clients}
        self.pending = {}
        if self.private:
            self.start_private(self.open)
        if persist:
            self.log.set_meta(open_round=self.open.persisted())
        self.phase = "open"
        self.notify()
        if self.open.complete() and not self.private:
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
        try:
            closed = await asyncio.get_running_loop().run_in_executor(
                None, self.machine.close, o.plan, o.sorted_results())
        except BaseException as e:  # noqa: BLE001 -- the held state may be half changed: stop, resume from the log
            self.fault = e
            return
        for client, reason in closed.refused.items():  # recorded, so a restart does not reload them
            self.log.drop_pending(o.plan.round, client, reason)
            del o.results[client]
            self.refused[client] = reason
            print(f"fedseed server: round {o.plan.round}: client {client}'s result dropped, {reason}", file=sys.stderr)
        if closed.update is None:
            self._redraw(o)
            return
        self._commit(o, closed)

    def _commit(self, o: OpenRound, closed: ClosedRound) -> None:
        r = o.plan.round
        record = self.machine.record(closed, time.time() - o.first_opened - closed.eval_s, o.attempt + 1,
                                     o.drawn_before, why_dropped=self.refused)
        record.traffic = self.traffic.pop(r, Traffic()).as_dict()
        self.machine.commit(closed, record)
        if self.private and self.unsaved_releases():
            self.log.set_meta(unsaved_releases=[])  # the committed round's saved state counts them now
        with open_private(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record.to_json()) + "\n")
        self.records.append(record)
        self.checksums[r] = record.checksum
        self.last, self.open, self.attempt, self.drawn_before, self.refused = r, None, 0, [], {}
        self.first_opened = 0.0
        self.progress.round_done(record)
        if self.machine.diverged:
            self.stopped = self.machine.diverged
            print(f"fedseed server: {self.stopped}", file=sys.stderr)
            self._finish()
        elif r >= self.cfg.run.rounds:
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
        records = list(self.records)
        if records and self.checksums.get(self.last):
            records[-1].checksum = self.checksums[self.last]
        private = self.machine.private.describe() if self.private else None
        summary = RunSummary.of("server", self.cfg, records, time.time() - self.started, stopped=self.stopped,
                                privacy=private, diverged=True if self.machine.diverged else None,
                                lr_relative=self.machine.lr_summary())
        write_private_text(self.out / "summary.json", json.dumps(summary.to_json(), indent=2) + "\n")

    def done(self) -> bool:
        """Finished, and every admitted client has been told so (or linger_s has passed)."""
        if self.finished_at is None:
            return False
        told = self.registry.admitted <= self.told_finished
        return told or time.monotonic() - self.finished_at >= self.sec.linger_s
