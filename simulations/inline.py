"""The one-process simulation: N virtual clients run sequentially over one model and one flat state.

It drives the same strategy objects a coordinator and its clients use; each client starts from the exact
global state (re-materialised), and the round's global update goes through the strategy's own ``apply``.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from fedseed import rng_spec
from fedseed.config import Config, to_dict
from fedseed.data.examples import Dataset, Example
from fedseed.data.partition import holdout_split, partition
from fedseed.data.sources import load_dataset
from fedseed.directions import DirectionEngine
from fedseed.layout import build_layout, model_checksum
from fedseed.models import LoadedModel, load_model
from fedseed.objective import Batch, Objective
from fedseed.roundlog import RoundLog
from fedseed.seeds import derive, sample_clients
from fedseed.state import FlatState
from fedseed.strategies import build_strategy
from fedseed.strategies.base import ClientResult, GlobalUpdate, LocalContext, Strategy


@dataclass
class Federation:
    """Everything a simulated run holds: model, state, data shards, objective, strategy."""

    cfg: Config
    lm: LoadedModel
    state: FlatState
    objective: Objective
    dataset: Dataset
    shards: list[np.ndarray]
    eval_examples: list[Example]
    strategy: Strategy

    def batch_stream(self, round_idx: int, client: int) -> Callable[[], Batch]:
        """Deterministic batches for (run, round, client): a fresh permutation of the shard, cycled."""
        rng = np.random.default_rng(derive(self.cfg.run.seed, 0xBA7C, round_idx, client))
        shard = self.shards[client]
        bs = self.cfg.federation.batch_size
        order: list[int] = []

        def next_batch() -> Batch:
            nonlocal order
            if len(order) < bs:
                order = order + rng.permutation(shard).tolist()
            picked, order = order[:bs], order[bs:]
            return self.objective.encode([self.dataset.examples[i] for i in picked])

        return next_batch

    def context(self, round_idx: int, client: int) -> LocalContext:
        return LocalContext(self.state, self.objective, self.batch_stream(round_idx, client), len(self.shards[client]))

    def sample_clients(self, round_idx: int) -> list[int]:
        everyone = list(range(self.cfg.federation.num_clients))
        if not self.strategy.samples_clients:
            return everyone
        return sample_clients(self.cfg.run.seed, round_idx, 0, everyone, self.cfg.federation.clients_per_round)


def split_data(cfg: Config) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """The dataset with its training and held-out indices, deterministic in the run seed."""
    ds = load_dataset(cfg.data.source, cfg.data.path or None, cfg.data.label_words or None, cfg.data.tasks)
    train_idx, eval_idx = holdout_split(len(ds.examples), cfg.data.eval_size, cfg.run.seed)
    if cfg.data.max_train:
        train_idx = np.sort(np.random.default_rng(cfg.run.seed).permutation(train_idx)[:cfg.data.max_train])
    return ds, train_idx, eval_idx


def evaluate_checkpoint(cfg: Config, checkpoint: str) -> dict[str, float]:
    """Score a Hugging Face checkpoint folder on the run's held-out examples, as the simulation does."""
    lm = load_model(checkpoint, cfg.model.device)
    ds, _, eval_idx = split_data(cfg)
    objective = Objective(lm.tokenizer, ds, cfg.model.max_length, cfg.model.device)
    return objective.evaluate(lm.model, [ds.examples[i] for i in eval_idx], cfg.eval.batch_size)


def build_federation(cfg: Config) -> Federation:
    if cfg.model.threads:
        torch.set_num_threads(cfg.model.threads)
    lm = load_model(cfg.model.name, cfg.model.device)
    for p in lm.model.parameters():
        p.requires_grad_(False)
    layout = build_layout(lm.model, cfg.model.trainable or None, model_checksum(lm.model))
    trainable = {s.name for s in layout.slots}
    for name, p in lm.model.named_parameters():
        p.requires_grad_(name in trainable)
    state = FlatState(lm.model, layout, DirectionEngine(cfg.model.backend))
    ds, train_idx, eval_idx = split_data(cfg)
    shards = partition(ds, train_idx, cfg.federation.num_clients, cfg.data.partition, cfg.data.alpha, cfg.run.seed)
    objective = Objective(lm.tokenizer, ds, cfg.model.max_length, cfg.model.device)
    strategy = build_strategy(cfg.strategy, cfg.run.seed, cfg.run.rounds, cfg.federation.num_clients, layout)
    return Federation(cfg, lm, state, objective, ds, shards, [ds.examples[i] for i in eval_idx], strategy)


def run_round(strategy: Strategy, state: FlatState, round_idx: int, candidates: list[int],
              context_for: Callable[[int, int], LocalContext]) -> tuple[dict, GlobalUpdate, list[ClientResult]]:
    """One round: configure, each client's local work from the exact global state, aggregate, apply."""
    plan = strategy.configure_round(round_idx, candidates)
    results = []
    for client in plan.clients:
        state.restore()
        results.append(strategy.local_work(context_for(round_idx, client), plan, client))
    state.restore()
    update = strategy.aggregate(plan, results)
    strategy.observe(plan, results)
    strategy.apply(state, update)
    n = len(results)
    down_per_client = plan.broadcast_bytes + update.wire_bytes()
    losses = [r.train_loss for r in results if np.isfinite(r.train_loss)]
    metrics = {"round": round_idx, "clients": n, "train_loss": float(np.mean(losses)) if losses else None,
               "bytes_up": int(sum(r.wire_bytes for r in results)), "bytes_down": int(down_per_client * n),
               "skipped_steps": int(sum(r.skipped_steps for r in results))}
    return metrics, update, results


def simulate(cfg: Config, out_dir: str | None = None, progress: bool = True, overwrite: bool = False) -> dict:
    """Run the whole simulation; writes metrics.jsonl, summary.json, log.sqlite and curves.png to out_dir."""
    from fedseed.plots import plot_curves

    out = pathlib.Path(out_dir or cfg.run.out)
    if (out / "log.sqlite").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a run; choose another --out or pass --overwrite")
    t_start = time.time()
    fed = build_federation(cfg)  # fails on a bad model or dataset before anything is written
    out.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.jsonl", "summary.json", "log.sqlite", "log.sqlite-wal", "log.sqlite-shm", "curves.png"):
        (out / name).unlink(missing_ok=True)
    log = RoundLog(out / "log.sqlite")
    log.set_meta(config=to_dict(cfg), layout=fed.state.layout.to_json(), fingerprint=fed.state.layout.fingerprint(),
                 spec_version=rng_spec.SPEC_VERSION, strategy=cfg.strategy.name)
    rows = []
    with open(out / "metrics.jsonl", "w", encoding="utf-8") as mf:
        zero = {"round": 0, "clients": 0, "train_loss": None, "bytes_up": 0, "bytes_down": 0,
                **fed.objective.evaluate(fed.lm.model, fed.eval_examples, cfg.eval.batch_size),
                "wall_s": 0.0, "checksum": fed.state.checksum()}
        rows.append(zero)
        mf.write(json.dumps(zero) + "\n")
        bar = _progress(cfg.run.rounds, progress)
        for r in range(1, cfg.run.rounds + 1):
            t0 = time.time()
            metrics, update, results = run_round(fed.strategy, fed.state, r, fed.sample_clients(r), fed.context)
            if r % cfg.eval.every == 0 or r == cfg.run.rounds:
                metrics.update(fed.objective.evaluate(fed.lm.model, fed.eval_examples, cfg.eval.batch_size))
            metrics["wall_s"] = round(time.time() - t0, 3)
            metrics["checksum"] = fed.state.checksum()
            log.append(update, results, metrics["checksum"], metrics)
            rows.append(metrics)
            mf.write(json.dumps(metrics) + "\n")
            mf.flush()
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: round(v, 4) for k, v in metrics.items()
                                 if k in ("train_loss", "eval_accuracy", "eval_loss") and v is not None})
        if bar is not None:
            bar.close()
    log.close()
    summary = summarize(cfg, rows, time.time() - t_start)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    plot_curves(rows, out / "curves.png", title=f"{cfg.strategy.name} on {cfg.data.source} ({cfg.model.name})")
    return summary


def summarize(cfg: Config, rows: list[dict], wall_s: float) -> dict:
    trained = [r for r in rows if r["round"] > 0]
    client_rounds = sum(r["clients"] for r in trained) or 1
    final_eval = next(r for r in reversed(rows) if "eval_loss" in r)
    return {
        "strategy": cfg.strategy.name, "model": cfg.model.name, "data": cfg.data.source, "rounds": cfg.run.rounds,
        "seed": cfg.run.seed, "zero_shot": {k: rows[0][k] for k in ("eval_loss", "eval_accuracy") if k in rows[0]},
        "final": {k: final_eval[k] for k in ("eval_loss", "eval_accuracy") if k in final_eval},
        "bytes_up_per_client_round": sum(r["bytes_up"] for r in trained) / client_rounds,
        "bytes_down_per_client_round": sum(r["bytes_down"] for r in trained) / client_rounds,
        "final_checksum": rows[-1]["checksum"], "wall_s": round(wall_s, 1),
    }


def _progress(total: int, enabled: bool) -> tqdm | None:
    if not enabled:
        return None
    return tqdm(total=total, desc="rounds", unit="round")
