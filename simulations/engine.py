"""The simulation driver: sample, run the round's clients on the chosen backend, aggregate, apply, evaluate, log.

The driver holds the reference model: it applies every global update, evaluates, and its checksum is the run's.
A run writes metrics.jsonl, summary.json, log.sqlite and curves.png; an interrupted run resumes from its log
(the state is rebuilt from the logged updates and checked against the logged checksum).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import numpy as np

from fedseed import rng_spec
from fedseed.config import Config, to_dict
from fedseed.replay import catch_up
from fedseed.roundlog import RoundLog
from fedseed.simulations.backends import make_backend
from fedseed.simulations.backends.base import Backend, peak_rss_mib, reset_peak_rss
from fedseed.simulations.federation import Federation, build_federation
from fedseed.simulations.participation import participation
from fedseed.simulations.progress import Progress
from fedseed.strategies.base import HEADER_BYTES, ClientResult, GlobalUpdate, RoundPlan, Strategy

RUN_FILES = ("metrics.jsonl", "summary.json", "log.sqlite", "log.sqlite-wal", "log.sqlite-shm", "curves.png")
METRICS = ("eval_loss", "eval_accuracy", "eval_rougeL")


def simulate(cfg: Config, out_dir: str | None = None, progress: bool = True, overwrite: bool = False,
             resume: bool = False) -> dict:
    """Run (or resume) the simulation; returns the summary also written to summary.json."""
    out = pathlib.Path(out_dir or cfg.run.out)
    exists = (out / "log.sqlite").exists()
    if overwrite and resume:
        raise ValueError("--overwrite and --resume exclude each other")
    if exists and not (overwrite or resume):
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it, --overwrite to replace it, "
                              "or choose another --out")
    t_setup = time.time()
    reset_peak_rss()
    fed = build_federation(cfg)  # a bad model, dataset or backend fails before anything is written
    backend = make_backend(cfg, fed)
    bar = log = None
    try:
        bar = Progress(cfg.run.rounds, progress, out / "tensorboard" if cfg.simulation.tensorboard else None)
        # a run stopped before its zero-shot row was written has trained nothing: resuming it starts it afresh
        begun = exists and (out / "metrics.jsonl").exists()
        log, rows = reopen(out, cfg, fed) if resume and begun else start(out, cfg, fed, t_setup)
        bar.resume_from(rows)
        if backend.follows_updates:  # resumed: workers start from the base weights
            for update in log.updates(1, rows[-1]["round"]):
                backend.push(update)
                backend.sync()  # one update at a time: a dense round is a whole model
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as mf:
            for r in range(rows[-1]["round"] + 1, cfg.run.rounds + 1):
                metrics, update, results = driver_round(fed, backend, r)
                if r % cfg.eval.every == 0 or r == cfg.run.rounds:
                    t_eval = time.time()
                    metrics.update(fed.evaluate())
                    metrics["eval_s"] = round(time.time() - t_eval, 3)
                metrics["checksum"] = fed.state.checksum()
                metrics["peak_rss_mib"] = round(peak_rss_mib(), 1)
                log.append(update, loggable(update, results), metrics["checksum"], metrics)
                rows.append(metrics)
                mf.write(json.dumps(metrics) + "\n")
                mf.flush()
                bar.round_done(metrics)
        workers_rss = backend.workers_peak_rss_mib()
        workers_checksums = backend.workers_checksums()
    finally:
        if bar is not None:
            bar.close()
        backend.close()
        if log is not None:
            log.close()
    summary = summarize(cfg, rows, workers_rss, workers_checksums)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    from fedseed.plots import plot_curves

    plot_curves(rows, out / "curves.png", title=f"{cfg.strategy.name} on {cfg.data.source} ({cfg.model.name})")
    return summary


def driver_round(fed: Federation, backend: Backend, r: int) -> tuple[dict, GlobalUpdate, list[ClientResult]]:
    """One round on the driver: plan, participation, clients on the backend, aggregate, apply, push."""
    t0 = time.time()
    strategy, cfg = fed.strategy, fed.cfg
    plan: RoundPlan = strategy.configure_round(r, fed.sample_clients(r))
    part = participation(cfg.federation, cfg.run.seed, r, plan.clients, strategy.steps_per_round())
    plan.steps = part.steps
    results = backend.run(plan, part.reporting)
    fed.state.restore()
    update = strategy.aggregate(plan, results) if results else GlobalUpdate(r, cfg.strategy.direction)
    strategy.observe(plan, results)
    strategy.apply(fed.state, update)  # an empty round (no one reported) only re-materialises the weights
    backend.push(update)
    losses = [x.train_loss for x in results if np.isfinite(x.train_loss)]
    down_per_client = plan.broadcast_bytes + down_bytes(strategy, update, results)
    metrics = {"round": r, "clients": len(results), "sampled": len(plan.clients), "dropped": part.dropped,
               "late": part.late, "train_loss": float(np.mean(losses)) if losses else None,
               "bytes_up": int(sum(x.wire_bytes for x in results)), "bytes_down": int(down_per_client * len(results)),
               "skipped_steps": int(sum(x.skipped_steps for x in results)), "wall_s": round(time.time() - t0, 3)}
    return metrics, update, results


def loggable(update: GlobalUpdate, results: list[ClientResult]) -> list[ClientResult]:
    """Client results as the round log keeps them: a dense round's update already holds everything a replay
    needs, so its clients' weight deltas (one model size each) are not stored again."""
    if update.dense is None:
        return results
    return [dataclasses.replace(r, payload=b"") for r in results]


def down_bytes(strategy: Strategy, update: GlobalUpdate, results: list[ClientResult]) -> int:
    """What a client downloads for the update: like the coordinator, the smaller of the coefficient form and
    (for strategies every party can aggregate) the relayed client results."""
    size = update.wire_bytes()
    if strategy.relayable and update.dense is None and results:
        size = min(size, HEADER_BYTES + sum(x.wire_bytes for x in results))
    return size


def start(out: pathlib.Path, cfg: Config, fed: Federation, t_setup: float) -> tuple[RoundLog, list[dict]]:
    out.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    log = RoundLog(out / "log.sqlite")
    log.set_meta(config=to_dict(cfg), layout=fed.state.layout.to_json(), fingerprint=fed.state.layout.fingerprint(),
                 spec_version=rng_spec.SPEC_VERSION, strategy=cfg.strategy.name)
    setup_s = time.time() - t_setup
    t0 = time.time()
    zero = {"round": 0, "clients": 0, "train_loss": None, "bytes_up": 0, "bytes_down": 0, **fed.evaluate()}
    zero.update(wall_s=round(time.time() - t0, 3), setup_s=round(setup_s, 3), checksum=fed.state.checksum(),
                peak_rss_mib=round(peak_rss_mib(), 1))
    (out / "metrics.jsonl").write_text(json.dumps(zero) + "\n", encoding="utf-8")
    return log, [zero]


def comparable(doc: dict) -> dict:
    """A run's config without what may change between a run and its resumption (output folder, backend)."""
    doc = json.loads(json.dumps(doc))
    doc.pop("simulation", None)
    doc.get("run", {}).pop("out", None)
    return doc


def reopen(out: pathlib.Path, cfg: Config, fed: Federation) -> tuple[RoundLog, list[dict]]:
    """Continue a run: same config, state rebuilt from the log and checked, strategy bookkeeping replayed."""
    log = RoundLog(out / "log.sqlite")
    try:
        logged = comparable(log.meta("config"))
        if logged != comparable(to_dict(cfg)):
            diff = sorted(f"{s}.{k}" for s in logged for k in logged[s]
                          if logged[s][k] != comparable(to_dict(cfg)).get(s, {}).get(k))
            raise ValueError(f"{out} was run with another configuration (differs in {', '.join(diff) or 'sections'})")
        if log.meta("fingerprint") != fed.state.layout.fingerprint():
            raise ValueError(f"{out} was run on another model (layout fingerprint differs)")
        last = log.last_round()
        catch_up(fed.state, log.updates(1, last))
        if last and fed.state.checksum() != log.checksum(last):
            raise ValueError(f"weights rebuilt from {out}/log.sqlite do not match its round-{last} checksum")
        for r in range(1, last + 1):  # FedKSeed-Pro's importance statistics, in the order they were built
            plan = fed.strategy.configure_round(r, fed.sample_clients(r))
            fed.strategy.observe(plan, log.client_results(r))
        zero = json.loads((out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[0])
    except BaseException:
        log.close()
        raise
    rows = [zero, *log.metrics()]
    (out / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in rows), encoding="utf-8")
    return log, rows


def summarize(cfg: Config, rows: list[dict], workers_rss: list[float], workers_checksums: list[str]) -> dict:
    trained = [r for r in rows if r["round"] > 0]
    client_rounds = sum(r["clients"] for r in trained) or 1
    final_eval = next(r for r in reversed(rows) if "eval_loss" in r)
    up, down = sum(r["bytes_up"] for r in trained), sum(r["bytes_down"] for r in trained)
    return {
        "strategy": cfg.strategy.name, "model": cfg.model.name, "data": cfg.data.source, "rounds": cfg.run.rounds,
        "seed": cfg.run.seed, "num_clients": cfg.federation.num_clients,
        # as sampled, not as configured: sample_fraction overrides it and one-byte SPSA takes every participant
        "clients_per_round": max((r["sampled"] for r in trained), default=0),
        "backend": cfg.simulation.backend,
        "zero_shot": {k: rows[0][k] for k in METRICS if k in rows[0]},
        "final": {k: final_eval[k] for k in METRICS if k in final_eval},
        "bytes_up_per_client_round": up / client_rounds, "bytes_down_per_client_round": down / client_rounds,
        "bytes_total": up + down, "client_rounds": sum(r["clients"] for r in trained),
        "final_checksum": rows[-1]["checksum"], "workers_checksums": workers_checksums,
        "wall_s": round(rows[0].get("setup_s", 0.0) + sum(r["wall_s"] + r.get("eval_s", 0.0) for r in rows), 1),
        "peak_rss_mib": max(r.get("peak_rss_mib", 0.0) for r in rows), "workers_peak_rss_mib": workers_rss,
    }
