"""A run's parts built from a config: model, exact flat state, data shards, objective, strategy.

The one-process simulation, every simulation worker, the coordinator's held model and the edge client all build
theirs here, so they train on the same shards and start from the same checksum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import zip_longest

import numpy as np
import torch

from fedseed.adapters import adapted
from fedseed.config import Config
from fedseed.data.examples import Dataset, Example
from fedseed.data.partition import holdout_split, partition
from fedseed.data.sources import load_dataset
from fedseed.directions import DirectionEngine
from fedseed.layout import build_layout, model_checksum
from fedseed.models import LoadedModel, load_model
from fedseed.objective import Batch, LossFn, Objective
from fedseed.precision import forward_dtype
from fedseed.seeds import derive
from fedseed.state import ModelState, build_state, loads_as_stored
from fedseed.strategies import build_strategy
from fedseed.strategies.base import LocalContext, RunSetup, Strategy


@dataclass
class Federation:
    """Everything a simulated run holds: model, state, data shards, objective, strategy."""

    cfg: Config
    lm: LoadedModel
    state: ModelState
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

    def evaluate(self) -> dict[str, float]:
        """The held-out metrics of the current weights (eval_loss, and eval_accuracy or eval_rougeL)."""
        e = self.cfg.eval
        return self.objective.evaluate(self.lm.model, self.eval_examples, e.batch_size, e.rouge, e.max_new_tokens)

    def guard_loss(self) -> float:
        """The loss of robust.guard_examples held-out examples, the labels taken in turn: what the divergence guard
        compares and strategy.lr_relative probes."""
        examples = guard_examples(self.eval_examples, self.cfg.robust.guard_examples)
        return self.objective.evaluate(self.lm.model, examples, self.cfg.eval.batch_size)["eval_loss"]

    def context(self, round_idx: int, client: int) -> LocalContext:
        return LocalContext(self.state, self.objective, self.batch_stream(round_idx, client), len(self.shards[client]))

    def use_local_data(self, dataset: Dataset, client: int) -> None:
        """Client `client` trains on `dataset` (its own rows) instead of its shard of the run's data."""
        self.dataset = dataset
        self.objective = Objective(self.lm.tokenizer, dataset, self.cfg.model.max_length, self.cfg.model.device,
                                   autocast=autocast_dtype(self.cfg))
        self.shards[client] = np.arange(len(dataset.examples))


def split_data(cfg: Config, data: Dataset | None = None,
               eval_data: Dataset | None = None) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """The dataset with its training and held-out indices, deterministic in the run seed. With data.eval_tasks
    the held-out examples are drawn from those tasks only and no client trains on them. A caller's own `data`
    replaces the configured source; with `eval_data` too, every row of `data` trains and `eval_data` is held out."""
    ds = data or load_dataset(cfg.data.source, cfg.data.path or None, cfg.data.label_words or None,
                              list(cfg.data.tasks) + list(cfg.data.eval_tasks))
    if eval_data is not None:
        if eval_data.label_words != ds.label_words:
            raise ValueError(f"eval data has label words {eval_data.label_words}, training data {ds.label_words}")
        n = len(ds.examples)
        ds = Dataset(ds.name, [*ds.examples, *eval_data.examples], ds.label_words)
        return ds, np.arange(n), np.arange(n, len(ds.examples))
    if cfg.data.eval_tasks:
        held = np.asarray([e.task in cfg.data.eval_tasks for e in ds.examples])
        pool = np.flatnonzero(held)
        picked = np.random.default_rng(cfg.run.seed).permutation(pool)[:cfg.data.eval_size]
        train_idx, eval_idx = np.flatnonzero(~held), np.sort(picked)
    else:
        train_idx, eval_idx = holdout_split(len(ds.examples), cfg.data.eval_size, cfg.run.seed)
    if cfg.data.max_train:
        train_idx = np.sort(np.random.default_rng(cfg.run.seed).permutation(train_idx)[:cfg.data.max_train])
    return ds, train_idx, eval_idx


def autocast_dtype(cfg: Config) -> torch.dtype | None:
    """The dtype this party's forwards autocast to (None: fp32 throughout)."""
    dtype = forward_dtype(cfg.model.compute_dtype, cfg.model.device)
    return None if dtype == torch.float32 else dtype


def evaluate_checkpoint(cfg: Config, checkpoint: str) -> dict[str, float]:
    """Score a Hugging Face checkpoint folder on the run's held-out examples, as the simulation does."""
    lm = load_model(checkpoint, cfg.model.device)
    ds, _, eval_idx = split_data(cfg)
    objective = Objective(lm.tokenizer, ds, cfg.model.max_length, cfg.model.device, autocast=autocast_dtype(cfg))
    return objective.evaluate(lm.model, [ds.examples[i] for i in eval_idx], cfg.eval.batch_size,
                              cfg.eval.rouge, cfg.eval.max_new_tokens)


def build_federation(cfg: Config, lm: LoadedModel | None = None, data: Dataset | None = None,
                     eval_data: Dataset | None = None, strategy: Strategy | None = None,
                     loss_fn: LossFn | None = None) -> Federation:
    """The run's parts from its config; a caller's own model, data, strategy or loss replaces the configured one."""
    if cfg.model.threads:
        torch.set_num_threads(cfg.model.threads)
    lm = lm or load_model(cfg.model.name, cfg.model.device, as_stored=loads_as_stored(cfg.model.state))
    lm.model, patterns = adapted(lm.model, cfg.adapter, cfg.model.trainable, cfg.run.seed, cfg.model.device)
    for p in lm.model.parameters():
        p.requires_grad_(False)
    layout = build_layout(lm.model, patterns, model_checksum(lm.model))
    trainable = {s.name for s in layout.slots}
    for name, p in lm.model.named_parameters():
        p.requires_grad_(name in trainable)
    state = build_state(cfg.model.state, lm.model, layout, DirectionEngine(cfg.model.backend),
                        autocast_dtype(cfg) or torch.float32)
    ds, train_idx, eval_idx = split_data(cfg, data, eval_data)
    shards = partition(ds, train_idx, cfg.federation.num_clients, cfg.data.partition, cfg.data.alpha, cfg.run.seed)
    objective = Objective(lm.tokenizer, ds, cfg.model.max_length, cfg.model.device, loss_fn, autocast_dtype(cfg))
    run = RunSetup(cfg.run.seed, cfg.run.rounds, cfg.federation.num_clients, layout, cfg.robust)
    strategy = (strategy or build_strategy(cfg.strategy)).setup(run)
    return Federation(cfg, lm, state, objective, ds, shards, [ds.examples[i] for i in eval_idx], strategy)


def guard_examples(examples: list[Example], n: int) -> list[Example]:
    """n held-out examples, the labels taken in turn (each label's examples in their order), or the first n
    when the examples have no labels. A held-out set may be ordered by label: the quickstart's first 32 are all
    positive, a loss of 0.044 where the set's is 1.17, which makes the guard's ratio and the |g| scale those of
    the examples the model already gets right."""
    by_label: dict[int | None, list[Example]] = {}
    for e in examples:
        by_label.setdefault(e.label, []).append(e)
    if None in by_label:
        return examples[:n]
    in_turn = zip_longest(*(by_label[label] for label in sorted(by_label)))
    return [e for turn in in_turn for e in turn if e is not None][:n]
