"""fedseed from Python: ``fedseed.simulate`` runs a federation on one machine from objects -- a model and
tokenizer (or a model name), data as rows, a Hugging Face dataset or a JSONL path, a strategy instance, a loss,
callbacks per round -- and returns the run's history. It builds the same Config a TOML file gives (so the run's
log, resume and export work as for `fedseed simulate`), then runs the same engine.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fedseed.config import Config, build_config, load_document
from fedseed.data import Dataset, dataset_from
from fedseed.data.sources import BUILTIN
from fedseed.federation import build_federation
from fedseed.models import LoadedModel
from fedseed.objective import LossFn
from fedseed.records import RoundRecord, RunSummary, read_rows
from fedseed.simulations.engine import RoundCallback
from fedseed.simulations.engine import simulate as run_engine
from fedseed.strategies import register_strategy
from fedseed.strategies.base import Strategy

DataLike = str | os.PathLike | Iterable[Mapping] | Dataset


@dataclass
class History:
    """What a run left: one record per round (round 0 is the zero-shot evaluation) and its summary."""

    records: list[RoundRecord]
    summary: RunSummary
    out: pathlib.Path

    @property
    def final(self) -> dict[str, float]:
        return self.summary.final


def _data_settings(data: DataLike | None) -> dict[str, Any]:
    """The [data] keys that name data given by name or file; objects travel beside the config."""
    if isinstance(data, str) and data in (*BUILTIN, "jsonl"):
        return {"source": data}
    if isinstance(data, (str, os.PathLike)):
        return {"source": "jsonl", "path": str(data)}
    return {}


def build_run_config(config: str | Mapping | None, settings: Mapping[str, Any] | None, model: Any,
                     data: DataLike | None, label_words: Sequence[str] | None, strategy: Strategy | None,
                     out: str | None) -> Config:
    """The run's Config: a TOML file or a mapping of tables, then `settings` ({"section.key": value}), then what
    the objects say (model name, data source, the strategy's own settings)."""
    doc = load_document(config) if isinstance(config, str) else {k: dict(v) for k, v in (config or {}).items()}
    for key, value in (settings or {}).items():  # values are set as given (--set parses text; these are objects)
        section, dot, name = key.partition(".")
        if not dot or not section or not name:
            raise ValueError(f"settings keys are section.key, got {key!r}")
        table = doc.setdefault(section, {})
        if not isinstance(table, dict):
            raise ValueError(f"config key '{section}' must be a table")
        table[name] = value
    if isinstance(model, str):
        doc.setdefault("model", {})["name"] = model
    doc.setdefault("data", {}).update(_data_settings(data))
    if label_words is not None:
        doc["data"]["label_words"] = list(label_words)
    if strategy is not None:
        clash = sorted(k for k in settings or {} if k.startswith("strategy."))
        if clash:
            raise ValueError(f"settings {', '.join(clash)} conflict with the strategy object: give them to it")
        register_strategy(type(strategy))  # an instance of a class defined by the caller names itself
        doc["strategy"] = dataclasses.asdict(strategy.cfg)
    if out is not None:
        doc.setdefault("run", {})["out"] = out
    return build_config(doc)


def simulate(*, model: str | torch.nn.Module | None = None, tokenizer: Any = None,
             data: DataLike | None = None, eval_data: DataLike | None = None, label_words: Sequence[str] | None = None,
             strategy: Strategy | None = None, loss: LossFn | None = None, config: str | Mapping | None = None,
             settings: Mapping[str, Any] | None = None, out: str | None = None,
             callbacks: Sequence[RoundCallback] = (), progress: bool = False, overwrite: bool = False,
             resume: bool = False) -> History:
    """Run a federation simulation and return its history.

    model: a built-in name or folder, or a causal LM module (fp32) with its `tokenizer`; default: the config's
        model.name (tiny-random-llama when no config names one).
    data / eval_data: a built-in source name, a JSONL path, rows ({"text", "label"} or {"prompt", "completion"})
        or a Hugging Face dataset; without eval_data the held-out set is cut from data (data.eval_size).
    strategy: e.g. ``fedseed.FedKSeed(lr=1e-3, num_seeds=256)``; loss: ``loss(model, batch) -> tensor``.
    config / settings: a TOML path or tables, and {"section.key": value} on top (as ``--set``).
    callbacks: each gets every round's RoundRecord as the round closes.
    """
    if strategy is not None and not isinstance(strategy, Strategy):
        raise TypeError(f"strategy must be a Strategy object such as fedseed.FedKSeed(lr=1e-3), got "
                        f"{type(strategy).__name__}; a strategy named in a config goes in settings={{'strategy.name': "
                        "...}}")
    cfg = build_run_config(config, settings, model, data, label_words, strategy, out)
    lm = None
    if isinstance(model, torch.nn.Module):
        if tokenizer is None:
            raise ValueError("a model object needs its tokenizer (tokenizer=...)")
        lm = LoadedModel(model, tokenizer, f"<{type(model).__name__} object>")
        cfg.model.name = lm.source
    words = cfg.data.label_words or None
    own = None if data is None or _data_settings(data) else dataset_from(data, words)
    held = None if eval_data is None else dataset_from(eval_data, words if own is None else own.label_words)
    if own is not None:
        cfg.data.source = own.name
    if cfg.simulation.backend != "inline" and (lm or own or held or loss):
        raise ValueError("model, data and loss objects run on the inline backend only: simulation workers build "
                         "their own parts from the config")
    fed = build_federation(cfg, lm, own, held, strategy, loss)
    summary = run_engine(cfg, out, progress=progress, overwrite=overwrite, resume=resume, fed=fed,
                         callbacks=callbacks)
    folder = pathlib.Path(out or cfg.run.out)
    every = read_rows((folder / "metrics.jsonl").read_text(encoding="utf-8"), str(folder / "metrics.jsonl"))
    return History(every, RunSummary.from_json(summary), folder)
