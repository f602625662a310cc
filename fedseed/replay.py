"""Rebuilding weights from base + log: materialise any round, catch up after missed rounds, export."""

from __future__ import annotations

import pathlib
from collections.abc import Iterable

import torch

from fedseed.adapters import adapted, merged, recorded
from fedseed.directions import DirectionEngine
from fedseed.layout import build_layout, model_checksum
from fedseed.models import LoadedModel, load_model
from fedseed.roundlog import RoundLog
from fedseed.state import ModelState, build_state, loads_as_stored, state_format
from fedseed.strategies.base import GlobalUpdate


def catch_up(state: ModelState, updates: Iterable[GlobalUpdate]) -> None:
    """Apply many rounds at once: seed updates merged per (seed, range), dense ones summed as they stream by (each
    is a whole model); bit-identical to applying them one by one because the state is exact fixed point."""
    seeded = []
    for u in updates:
        if u.dense is None:
            seeded.append(u)
        else:
            state.add_dense(torch.from_numpy(u.dense))
    if seeded:
        state.apply_rounds(seeded)
    else:
        state.restore()  # apply_rounds re-materialises already; one pass over the weights is enough


def open_state(log: RoundLog, backend: str = "compiled", device: str = "cpu") -> tuple[LoadedModel, ModelState]:
    """The run's base model with its flat state at round 0, after checking the layout fingerprint."""
    cfg = log.meta("config")
    fmt = state_format(cfg)
    lm = load_model(cfg["model"]["name"], device, as_stored=loads_as_stored(fmt))
    lm.model, patterns = adapted(lm.model, recorded(cfg), cfg["model"]["trainable"], cfg["run"]["seed"], device)
    layout = build_layout(lm.model, patterns, model_checksum(lm.model))
    if layout.fingerprint() != log.meta("fingerprint"):
        raise ValueError("the base model's layout fingerprint differs from the run's: wrong model or weights")
    # fp32 whatever the run's forwards used: replay checks and exports the exact state's weights
    return lm, build_state(fmt, lm.model, layout, DirectionEngine(backend))


def materialize_round(log: RoundLog, round_idx: int, backend: str = "compiled",
                      device: str = "cpu") -> tuple[LoadedModel, ModelState]:
    last = log.last_round()
    if not 0 <= round_idx <= last:
        raise ValueError(f"round {round_idx} is outside the log's rounds 0..{last}")
    lm, state = open_state(log, backend, device)
    catch_up(state, log.updates(1, round_idx))
    if round_idx and log.checksum(round_idx) and state.checksum() != log.checksum(round_idx):
        raise ValueError(f"weights rebuilt for round {round_idx} do not match the logged checksum")
    return lm, state


def export_checkpoint(run: str, round_idx: int | None, out: str, overwrite: bool = False) -> pathlib.Path:
    """Write round `round_idx` (default: last) of a run as a Hugging Face checkpoint folder (a folder that holds
    anything already is refused unless `overwrite`)."""
    target = pathlib.Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise FileExistsError(f"{target} is not empty; choose another --out or pass --overwrite")
    log = RoundLog.open_existing(run)
    try:
        r = log.last_round() if round_idx is None else round_idx
        lm, state = materialize_round(log, r)
    finally:
        log.close()
    with state.resident():
        for p in lm.model.parameters():
            p.data = p.data.clone()  # views into one flat buffer share storage, which safetensors refuses
        merged(lm.model).save_pretrained(target)
    lm.tokenizer.save_pretrained(target)
    return target
