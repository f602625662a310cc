"""The simulation driver: the run's round machine (``fedseed.round_machine``) over a backend that runs the clients.

The driver holds the reference model: the machine applies every global update to it, evaluates, and its
checksum is the run's. A run writes metrics.jsonl, summary.json, log.sqlite and curves.png; an interrupted run
resumes from its log (``fedseed.resume``: state rebuilt and checked, strategy state loaded).
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
from collections.abc import Callable, Sequence

from fedseed.accountant import BudgetExhausted
from fedseed.config import Config
from fedseed.federation import Federation, build_federation
from fedseed.guard import MAX_ROLLBACKS
from fedseed.private import open_private, write_private_text
from fedseed.progress import Progress
from fedseed.records import RoundRecord, RunSummary
from fedseed.resume import check_resumable, restore, start_log
from fedseed.round_machine import ResultRefused, RoundMachine
from fedseed.roundlog import RoundLog
from fedseed.simulations.backends import make_backend
from fedseed.simulations.backends.base import Backend, peak_rss_mib, reset_peak_rss
from fedseed.simulations.participation import participation

RUN_FILES = ("metrics.jsonl", "summary.json", "log.sqlite", "log.sqlite-wal", "log.sqlite-shm", "curves.png")
RoundCallback = Callable[[RoundRecord], None]


def simulate(cfg: Config, out_dir: str | None = None, progress: bool = True, overwrite: bool = False,
             resume: bool = False, fed: Federation | None = None,
             callbacks: Sequence[RoundCallback] = ()) -> dict:
    """Run (or resume) the simulation; returns the summary also written to summary.json. `fed` is the run's
    parts when a caller built them from its own objects; each callback gets every round's record."""
    out = pathlib.Path(out_dir or cfg.run.out)
    exists = (out / "log.sqlite").exists()
    if overwrite and resume:
        raise ValueError("--overwrite and --resume exclude each other")
    if exists and not (overwrite or resume):
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it, --overwrite to replace it, "
                              "or choose another --out")
    t_setup = time.time()
    reset_peak_rss()
    fed = fed or build_federation(cfg)  # a bad model, dataset or backend fails before anything is written
    backend = make_backend(cfg, fed)
    bar = log = None
    try:
        bar = Progress(cfg.run.rounds, progress, out / "tensorboard" if cfg.simulation.tensorboard else None)
        # a run stopped before its zero-shot record was written has trained nothing: resuming it starts it afresh
        begun = exists and (out / "metrics.jsonl").exists()
        log, machine, records = reopen(out, cfg, fed) if resume and begun else start(out, cfg, fed, t_setup)
        bar.resume_from(records)
        if backend.follows_updates:  # resumed: workers start from the base weights
            for update in log.updates(1, records[-1].round):
                backend.push(update)
                backend.sync()  # one update at a time: a dense round is a whole model
        stopped, diverged = None, None
        with open_private(out / "metrics.jsonl", "a") as mf:
            for r in range(records[-1].round + 1, cfg.run.rounds + 1):
                try:
                    record = driver_round(machine, fed, backend, r)
                except BudgetExhausted as e:
                    stopped = str(e)
                    print(f"fedseed: {stopped}", file=sys.stderr)
                    break
                records.append(record)
                mf.write(json.dumps(record.to_json()) + "\n")
                mf.flush()
                bar.round_done(record)
                for callback in callbacks:
                    callback(record)
                if machine.diverged:
                    stopped, diverged = machine.diverged, True
                    print(f"fedseed: {stopped}", file=sys.stderr)
                    break
        extra = {"backend": cfg.simulation.backend, "workers_peak_rss_mib": backend.workers_peak_rss_mib(),
                 "workers_checksums": backend.workers_checksums(), "stopped": stopped, "diverged": diverged,
                 "privacy": machine.private.describe() if machine.private is not None else None,
                 "lr_relative": machine.lr_summary()}
    finally:
        if bar is not None:
            bar.close()
        backend.close()
        if log is not None:
            log.close()
    wall_s = (records[0].setup_s or 0.0) + sum(r.wall_s + r.eval_s for r in records)
    summary = RunSummary.of("simulate", cfg, records, wall_s, **extra).to_json()
    write_private_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    from fedseed.plots import plot_curves

    plot_curves([r.to_json() for r in records], out / "curves.png",
                title=f"{cfg.strategy.name} on {cfg.data.source} ({cfg.model.name})")
    return summary


def driver_round(machine: RoundMachine, fed: Federation, backend: Backend, r: int) -> RoundRecord:
    """One round: draw, participation, clients on the backend, then the machine checks, closes and logs it."""
    t0 = time.time()
    cfg = fed.cfg
    plan = machine.draw(r, list(range(cfg.federation.num_clients)))
    part = participation(cfg.federation, cfg.run.seed, r, plan.clients, fed.strategy.steps_per_round())
    plan.steps = part.steps
    why = {c: "dropped out (federation.dropout)" for c in part.dropped}
    why |= {c: "late: its steps outlast federation.deadline_steps (a straggler)" for c in part.late}
    results = []
    for result in backend.run(plan, part.reporting):
        try:
            machine.check(plan, result)
            results.append(result)
        except ResultRefused as e:
            why[result.client] = f"refused: {e}"
    fed.state.restore()
    if machine.private is not None:
        ssum, private_bytes = machine.private.simulated_sum(str(machine.log.meta("run_id")), plan, results)
        closed = machine.close_private(plan, ssum, private_bytes, empty_ok=True)
    else:
        closed = machine.close(plan, results, empty_ok=True)  # a round no one reported only re-materialises
    backend.push(closed.update)
    eval_s = closed.eval_s
    record = machine.record(closed, time.time() - t0 - eval_s, why_dropped=why, late=part.late)
    record.peak_rss_mib = round(peak_rss_mib(), 1)
    machine.commit(closed, record)
    return record


def start(out: pathlib.Path, cfg: Config, fed: Federation,
          t_setup: float) -> tuple[RoundLog, RoundMachine, list[RoundRecord]]:
    out.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    log = RoundLog(out / "log.sqlite")
    layout = fed.state.layout
    start_log(log, cfg, layout.fingerprint(), layout.to_json(), fed.state.checksum())
    setup_s = time.time() - t_setup
    t0 = time.time()
    evals = fed.evaluate()
    zero = RoundRecord(round=0, evals=evals, wall_s=round(time.time() - t0, 3), setup_s=round(setup_s, 3),
                       checksum=fed.state.checksum(), peak_rss_mib=round(peak_rss_mib(), 1))
    log.set_meta(round0=zero.to_json())
    write_private_text(out / "metrics.jsonl", json.dumps(zero.to_json()) + "\n")
    machine = RoundMachine(cfg, fed.strategy, log, fed.state, fed.evaluate, fed.guard_loss, MAX_ROLLBACKS)
    machine.resolve_lr()
    return log, machine, [zero]


def reopen(out: pathlib.Path, cfg: Config, fed: Federation) -> tuple[RoundLog, RoundMachine, list[RoundRecord]]:
    """Continue a run: same config (``fedseed.resume``), state and strategy state restored from the log."""
    log = RoundLog(out / "log.sqlite")
    try:
        check_resumable(log, cfg, fed.state.layout.fingerprint())
        machine = RoundMachine(cfg, fed.strategy, log, fed.state, fed.evaluate, fed.guard_loss, MAX_ROLLBACKS)
        machine.resolve_lr()  # before the state is restored: a run without a logged scale measures the base
        records = restore(machine, log)
    except BaseException:
        log.close()
        raise
    write_private_text(out / "metrics.jsonl", "".join(json.dumps(r.to_json()) + "\n" for r in records))
    return log, machine, records
