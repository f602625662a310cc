"""The rules of a round, written once for every driver: the one-process simulation and the coordinator call
the same methods, so sampling, result checks, closing (aggregate, strategy state, apply, evaluate), what a
round's record holds and what the log keeps cannot differ between them.

    draw -> check each result -> close -> record -> commit

Drivers differ only in where client work runs and how results arrive: a simulation backend returns them, a
coordinator receives them over gRPC and may draw a round again when too few arrive by its deadline.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fedseed import wire
from fedseed.compact import LOG_ONLY_ROOM
from fedseed.config import LR_RELATIVE_NEEDS_MODEL, Config
from fedseed.directions import MAX_ABS_COEF
from fedseed.guard import DivergenceGuard
from fedseed.lr_scale import PROBES, median_abs_g
from fedseed.private_round import PrivateRun, secure_rng
from fedseed.records import RoundRecord, mean_or_none
from fedseed.roundlog import RoundLog
from fedseed.secagg.protocol import SecureSum
from fedseed.seeds import sample_clients
from fedseed.state import DELTA_BOUND_LIMIT, ModelState, seed_growth
from fedseed.strategies.base import ClientResult, GlobalUpdate, RoundPlan, Strategy

MAX_SAMPLES = 1 << 40


class ResultRefused(ValueError):
    """A client result that cannot join its round; the message says why."""


@dataclass
class ClosedRound:
    plan: RoundPlan
    results: list[ClientResult]  # what was aggregated, in client order
    refused: dict[int, str]  # results dropped while closing, and why
    update: GlobalUpdate | None  # None: nothing could be aggregated (a coordinator draws the round again)
    checksum: str = ""
    evals: dict[str, float] = field(default_factory=dict)
    eval_s: float = 0.0
    flagged: str = ""  # why the divergence guard flagged the round (empty: it did not)
    rolled_back: bool = False  # the round's update was undone: the round applies nothing
    undone: list[int] = field(default_factory=list)  # the clients whose results the rollback undid
    secure: SecureSum | None = None  # a private round: who is in its sum (their results stay unknown)
    private_bytes: tuple[int, int] = (0, 0)  # a private round's bytes up and down (protocol and masked vectors)

    def reported(self) -> list[int]:
        return self.secure.clients if self.secure is not None else [r.client for r in self.results]


class RoundMachine:
    """One run's round rules. ``state`` and ``evaluate`` belong to the party holding the model (a simulation's
    driver, a coordinator with hold_model); a log-only coordinator passes None and learns checksums elsewhere."""

    def __init__(self, cfg: Config, strategy: Strategy, log: RoundLog, state: ModelState | None = None,
                 evaluate: Callable[[], dict[str, float]] | None = None,
                 guard_loss: Callable[[], float] | None = None, stop_after_rollbacks: int = 0) -> None:
        """stop_after_rollbacks: end the run after that many rounds rolled back in a row (0: never). A simulation
        sets it; a coordinator does not, so a client drawn into every round cannot end a deployment by it."""
        self.cfg, self.strategy, self.log = cfg, strategy, log
        self.stop_after_rollbacks = stop_after_rollbacks
        self.state, self.evaluate = state, evaluate
        self.delta_bound = 0  # what every party's fixed-point state may hold at most, summed over applied rounds
        guarded = (state is not None and guard_loss is not None and not strategy.centralized
                   and cfg.robust.divergence_factor > 0)
        self.guard = DivergenceGuard(cfg.robust, guard_loss) if guarded else None
        self.diverged: str | None = None  # why the guard ended the run (the rounds so far are logged)
        self.private = PrivateRun(cfg, strategy) if cfg.privacy.private else None
        if self.private is not None and log is not None:
            log.set_meta(privacy=self.private.describe())
        self.guard_loss = guard_loss

    def resolve_lr(self) -> None:
        """Under strategy.lr_relative, set the strategy's |g| scale: the one in the log (a resumed run), or
        measured now. Called once the run's log is checked or started and before its state is restored, so a
        measurement is made at the base weights."""
        if self.cfg.strategy.lr_relative:
            self.strategy.g_scale = self._g_scale(self.guard_loss)

    def _g_scale(self, loss: Callable[[], float] | None) -> float:
        if self.log is not None:
            try:
                return float(self.log.meta("g_scale"))
            except KeyError:
                pass  # a new run: measured below
        if self.state is None or loss is None:
            raise ValueError(f"strategy.lr_relative: {LR_RELATIVE_NEEDS_MODEL}")
        s = self.cfg.strategy
        scale = median_abs_g(self.state, loss, self.cfg.run.seed, s.eps, s.direction)
        if self.log is not None:
            self.log.set_meta(g_scale=scale)
        print(f"fedseed: strategy.lr_relative: median |g| {scale:.4g} at the base weights ({PROBES} probes), "
              f"so lr = {s.lr:g} / {scale:.4g} = {s.lr / scale:.4g}", file=sys.stderr)
        return scale

    def lr_summary(self) -> dict | None:
        """What a relative lr resolved to, for the run's summary (None: an absolute lr)."""
        if not self.cfg.strategy.lr_relative:
            return None
        return {"relative": self.cfg.strategy.lr, "median_abs_g": self.strategy.g_scale,
                "lr": self.cfg.strategy.lr / self.strategy.g_scale}

    # ---- planning ----------------------------------------------------------------------------------------
    def draw(self, r: int, available: list[int], attempt: int = 0, keep: list[int] | None = None) -> RoundPlan:
        """Round r's clients among `available` (and every client in `keep`, whose results were accepted in an
        earlier attempt), its lr and broadcast. Raises ValueError when the strategy has no one to run."""
        keep = sorted(keep or [])
        others = sorted(c for c in available if c not in keep)
        k = self.cfg.federation.clients_per_round
        drawn = (sample_clients(self.cfg.run.seed, r, attempt, others, max(0, k - len(keep)))
                 if self.strategy.samples_clients else others)
        plan = self.strategy.configure_round(r, sorted(keep + drawn))
        if self.private is not None:  # BudgetExhausted: no round is trained that could not be released
            self.private.check_budget(r, plan.clients)
        return plan

    # ---- results -----------------------------------------------------------------------------------------
    def check(self, plan: RoundPlan, result: ClientResult) -> None:
        """Refuse (ResultRefused) a result no party could aggregate: impossible counts, a malformed payload, or
        an update of its own beyond the coefficient or state bound -- which bounds every round it joins, since
        aggregation is a weighted average of the clients' own updates."""
        limit = self.strategy.max_payload_bytes()
        if len(result.payload) > limit:
            raise ResultRefused(f"payload of {len(result.payload)} bytes exceeds a legal result's {limit} bytes")
        if not 1 <= result.num_samples <= MAX_SAMPLES:
            raise ResultRefused(f"num_samples must be in [1, {MAX_SAMPLES}], got {result.num_samples}")
        if math.isinf(result.train_loss):
            raise ResultRefused("train_loss must be finite (or NaN when every step was skipped)")
        if not 0 <= result.skipped_steps <= self.strategy.steps_per_round():
            raise ResultRefused(f"skipped_steps {result.skipped_steps} exceeds the steps of a round")
        try:
            self.strategy.check_result(plan, result)
            if self.strategy.networked:  # a simulation-only baseline's results come from the driver's own code
                self.aggregate_checked(plan, [result])
        except (ValueError, OverflowError) as e:
            raise ResultRefused(f"payload refused: {e}") from None

    def aggregate_checked(self, plan: RoundPlan, results: list[ClientResult]) -> GlobalUpdate:
        """The round's update, or ValueError when some party could not apply it. Changes nothing."""
        update = self.strategy.aggregate(plan, results)
        self.check_update(update)
        return update

    def check_update(self, update: GlobalUpdate) -> None:
        """ValueError when some party could not apply the update (coefficient or state bound)."""
        big = ~(np.abs(update.coefs) <= MAX_ABS_COEF)  # NaN counts as out of range
        if big.any():
            k = int(np.argmax(big))
            where = "" if update.pool_indices is None else f" (pool index {update.pool_indices[k]})"
            raise ValueError(f"the round's coefficient on seed {update.seeds[k]}{where} would be {update.coefs[k]:.4g}"
                             f", beyond the bound {MAX_ABS_COEF} (the sum of this result's scalars on one seed)")
        if self.state is not None and self.state.format == "compact":
            fits = self.state.has_room(update)  # exact: every party holds the same integers
        else:
            limit = DELTA_BOUND_LIMIT if self.cfg.model.state == "wide" else LOG_ONLY_ROOM
            fits = self.delta_bound + self.growth(update) < limit
        if not fits:
            raise ValueError("the update would take the fixed-point state past its bound (the run's coefficients "
                             "sum to more than the state can hold)")

    @staticmethod
    def growth(update: GlobalUpdate) -> int:
        return 0 if update.dense is not None else seed_growth(update.coef_ints(), update.kind)

    def admissible(self, plan: RoundPlan, results: list[ClientResult]
                   ) -> tuple[list[ClientResult], dict[int, str], GlobalUpdate | None]:
        """The results kept, in client order, while the round stays aggregable; why each other was dropped; and
        the update of those kept (None when none is)."""
        try:
            return results, {}, self.aggregate_checked(plan, results) if results else None
        except Exception:  # noqa: BLE001 -- find the results at fault, below
            pass
        kept: list[ClientResult] = []
        refused: dict[int, str] = {}
        update = None
        for res in results:
            try:
                update = self.aggregate_checked(plan, [*kept, res])
            except Exception as e:  # noqa: BLE001 -- whatever a result makes aggregation raise, drop the result
                refused[res.client] = f"refused at close: {e}"
                if not isinstance(e, ValueError | OverflowError):
                    traceback.print_exc(file=sys.stderr)
                continue
            kept.append(res)
        return kept, refused, update

    # ---- closing -----------------------------------------------------------------------------------------
    def close(self, plan: RoundPlan, results: list[ClientResult], empty_ok: bool = False) -> ClosedRound:
        """Leave out outliers, aggregate what can be, then (past the point of no return) apply, let the divergence
        guard judge the round (undoing it exactly when it must be rolled back), update strategy state, evaluate.
        With no result left and not empty_ok nothing changes and the update is None."""
        results = sorted(results, key=lambda x: x.client)
        outlying = self.strategy.outliers(plan, results) if len(results) > 1 else {}
        results = [r for r in results if r.client not in outlying]
        kept, refused, update = self.admissible(plan, results)
        refused = {**{c: f"left out as {why}" for c, why in outlying.items()}, **refused}
        if update is None and not empty_ok:
            return ClosedRound(plan, [], refused, None)
        update = update or GlobalUpdate(plan.round, self.cfg.strategy.direction)
        return self._apply(ClosedRound(plan, kept, refused, update))

    def close_private(self, plan: RoundPlan, ssum: SecureSum, private_bytes: tuple[int, int] = (0, 0),
                      empty_ok: bool = False) -> ClosedRound:
        """Close a private round from what the coordinator learnt: the secure sum over its clients. A sum that
        could not be unmasked, or over fewer than privacy.min_clients clients, is not released: the round is
        empty (empty_ok) or its update None (a coordinator draws it again)."""
        fewer = len(ssum.clients) < self.cfg.privacy.min_clients
        if ssum.failed or fewer:
            why = ssum.failed or (f"{len(ssum.clients)} clients reported, fewer than privacy.min_clients "
                                  f"{self.cfg.privacy.min_clients}: the round's sum is not released")
            refused = {c: why for c in plan.clients}
            if not empty_ok:
                return ClosedRound(plan, [], refused, None)
            return self._apply(ClosedRound(plan, [], refused, GlobalUpdate(plan.round, self.cfg.strategy.direction)))
        combined = self.private.combined(plan, ssum, secure_rng())
        update = self.strategy.update_from(plan, combined)
        if self.private.accountant is not None:  # the sum is released from here on: its privacy is spent
            self.private.accountant.spend(ssum.clients)
        refused = {}
        try:
            self.check_update(update)
        except ValueError as e:
            refused = {c: f"the round's released update was refused: {e}" for c in ssum.clients}
            update, ssum = GlobalUpdate(plan.round, self.cfg.strategy.direction), SecureSum([], ssum.total, str(e))
        closed = self._apply(ClosedRound(plan, [], refused, update, secure=ssum, private_bytes=private_bytes))
        if closed.secure.clients:  # released and not rolled back: strategy state learns from the released values
            self.strategy.observe_combined(plan, combined)
        return closed

    def _apply(self, closed: ClosedRound) -> ClosedRound:
        """Past the point of no return: apply, judge, strategy state, bound, evaluation."""
        plan, update = closed.plan, closed.update
        if self.state is not None:
            if self.guard is not None:
                self.guard.before()
            room = self.state.room()
            self.strategy.apply(self.state, update)  # an empty round only re-materialises the weights
            if self.guard is not None and closed.reported():
                self._judge(closed, room)
            closed.checksum = self.state.checksum()
        self.strategy.observe(plan, closed.results)
        self.delta_bound += self.growth(closed.update)
        if self.evaluate is not None and (plan.round % self.cfg.eval.every == 0 or plan.round == self.cfg.run.rounds):
            t0 = time.time()
            closed.evals = self.evaluate()
            closed.eval_s = round(time.time() - t0, 3)
        return closed

    def _judge(self, closed: ClosedRound, room_before: object) -> None:
        verdict = self.guard.after()
        if not verdict:
            return
        closed.flagged = verdict
        print(f"fedseed: round {closed.plan.round} flagged: {verdict}", file=sys.stderr)
        if self.cfg.robust.on_divergence == "flag":
            return
        # integer arithmetic undoes it exactly, back to a state the room from before it describes (the
        # running bound cannot see that the negated update shrinks what the update grew)
        self.state.set_room(room_before)
        self.strategy.apply(self.state, closed.update.negated())
        self.state.set_room(room_before)
        self.guard.rolled_back()
        if self.cfg.robust.on_divergence == "stop" or 0 < self.stop_after_rollbacks <= self.guard.rollbacks_in_a_row:
            self.diverged = self._diverged_message(closed.plan, verdict)
        closed.refused |= {c: f"the round was rolled back ({verdict})" for c in closed.reported()}
        closed.undone = closed.reported()
        closed.results, closed.rolled_back = [], True
        if closed.secure is not None:
            closed.secure = SecureSum([], closed.secure.total, "rolled back")
        closed.update = GlobalUpdate(closed.plan.round, closed.update.kind)

    def _diverged_message(self, plan: RoundPlan, verdict: str) -> str:
        n = self.guard.rollbacks_in_a_row if self.guard is not None else 1
        rounds = f"round {plan.round} was" if n == 1 else f"rounds {plan.round - n + 1}..{plan.round} were"
        clip = "strategy.grad_clip or " if hasattr(self.cfg.strategy, "grad_clip") else ""
        relative = ("; strategy.lr_relative = true sets the lr from this model's own |g| scale"
                    if self.strategy.steps_along_spsa_scalars and not self.cfg.strategy.lr_relative else "")
        return (f"the run stopped: {rounds} rolled back ({verdict}). Its steps are too large for this model: "
                f"lower strategy.lr (now {self.cfg.strategy.lr:g}), or bound them with {clip}robust.clip_factor"
                f"{relative}; the state is the one before the rolled-back round")

    def round_passes(self, closed: ClosedRound) -> tuple[int, int]:
        """Training forwards and backwards of the round's results: those in it and those a rollback undid (their
        work was done all the same). A result refused before the round closed is not counted."""
        plan, default = closed.plan, self.strategy.steps_per_round()
        computed = set(closed.reported()) | set(closed.undone)
        passes = [self.strategy.passes(plan.local_steps(c, default)) for c in computed]
        return sum(f for f, _ in passes), sum(b for _, b in passes)

    def round_bytes(self, closed: ClosedRound) -> tuple[int, int]:
        """Serialized bytes of the round's messages: every reporting client's UpdateRequest up; its round task
        and the round's global update (relayed with its own result left out, or coefficients) down."""
        if self.strategy.centralized or closed.update is None:
            return 0, 0
        plan, results, update, checksum = closed.plan, closed.results, closed.update, wire.SIZED_CHECKSUM
        if closed.secure is not None:  # the protocol's messages and masked vectors, then task and coefficients
            up, down = closed.private_bytes
            task = wire.round_task(plan, self.strategy.encode_broadcast(plan), checksum,
                                   private=self.private.round_message(0)).ByteSize()
            each = task + wire.round_form(update, [], plan.lr, checksum, False).ByteSize()
            return up, down + each * len(closed.secure.clients)
        up = sum(wire.update_request(r, checksum).ByteSize() for r in results)
        task = wire.round_task(plan, self.strategy.encode_broadcast(plan), checksum).ByteSize()
        if update.dense is not None:  # the first-order baseline: what a dense coefficient field would carry
            down = wire.dense_form_size(update, checksum)
            return up, (task + down) * len(results)
        form = wire.round_form(update, results, plan.lr, checksum, self.strategy.relayable)
        return up, sum(task + wire.without_own(form, r.client).ByteSize() for r in results)

    # ---- records and the log -----------------------------------------------------------------------------
    def record(self, closed: ClosedRound, wall_s: float, attempts: int = 1, drawn_before: list[int] | None = None,
               why_dropped: dict[int, str] | None = None, late: list[int] | None = None) -> RoundRecord:
        """The round's record: who was drawn (in any attempt), who is in it, who is not and why."""
        plan, results = closed.plan, closed.results
        reported = closed.reported()
        drawn = sorted(set(plan.clients) | set(drawn_before or []))
        reasons = {**(why_dropped or {}), **closed.refused}
        why = {}
        for c in drawn:
            if c not in reported:
                why[str(c)] = reasons.get(c) or ("no result by the deadline" if c in plan.clients else
                                                 "no result before the round was drawn again (short of its quorum)")
        up, down = self.round_bytes(closed)
        forwards, backwards = self.round_passes(closed)
        accountant = self.private.accountant if self.private is not None else None
        return RoundRecord(
            round=plan.round, clients=len(reported), planned=len(plan.clients), drawn=drawn, reported=reported,
            dropped=sorted(int(c) for c in why), why_dropped=why, late=sorted(late or []), attempts=attempts,
            train_loss=mean_or_none([r.train_loss for r in results]),
            skipped_steps=int(sum(r.skipped_steps for r in results)), bytes_up=up, bytes_down=down,
            wall_s=round(wall_s, 3), eval_s=closed.eval_s, evals=closed.evals, checksum=closed.checksum,
            flagged=closed.flagged, rolled_back=closed.rolled_back, forwards=forwards, backwards=backwards,
            epsilon=None if accountant is None else round(accountant.epsilon, 6))

    def commit(self, closed: ClosedRound, record: RoundRecord) -> None:
        """Log the round atomically: its update, the results a replay needs, the record and strategy state."""
        results = closed.results
        if closed.update is not None and closed.update.dense is not None:
            results = [dataclasses.replace(r, payload=b"") for r in results]  # the update holds them already
        self.log.append(closed.update, results, record.checksum, record.to_json(), self.saved_state())

    def saved_state(self) -> dict[str, np.ndarray]:
        """What the log keeps after each round besides the update: strategy state and privacy accounting."""
        state = self.strategy.state_dict()
        if self.private is not None and self.private.accountant is not None:
            state = state | self.private.accountant.state_dict()
        return state

    def load_saved_state(self, state: dict[str, np.ndarray]) -> None:
        accounting = {k: v for k, v in state.items() if k.startswith("privacy.")}
        self.strategy.load_state_dict({k: v for k, v in state.items() if not k.startswith("privacy.")})
        if self.private is not None and self.private.accountant is not None:
            self.private.accountant.load_state_dict(accounting)
