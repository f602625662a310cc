"""The records every run writes, whoever drives it (simulation, coordinator, loopback): one row per round in
metrics.jsonl and the round log, and the run's summary.json. Both carry a schema version; readers take any
run's records through ``RoundRecord.from_json`` / ``RunSummary.from_json``, which name what they cannot read.

Bytes are the serialized protobuf messages that carry a round, counted by one encoder (``fedseed.wire``) in
every mode: each reporting client's UpdateRequest up, its round task and the round's global update down. A
coordinator also records the gRPC traffic it measured (``traffic``: every call, polls, heartbeats and
signatures included).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
EVAL_KEYS = ("eval_loss", "eval_accuracy", "eval_rougeL")


class RecordError(ValueError):
    """A record this fedseed cannot read (another schema version, or not a record at all)."""


def _check_schema(doc: Any, what: str) -> dict:
    if not isinstance(doc, dict):
        raise RecordError(f"{what} is not a JSON object")
    version = doc.get("schema", 0)
    if version != SCHEMA_VERSION:
        older = "an older" if isinstance(version, int) and version < SCHEMA_VERSION else "another"
        raise RecordError(f"{what} has record schema {version}, written by {older} fedseed; this one reads "
                          f"schema {SCHEMA_VERSION}")
    return doc


def _known(cls: type, doc: dict) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in doc.items() if k in names}


@dataclass
class RoundRecord:
    round: int
    clients: int = 0  # results aggregated into the round
    planned: int = 0  # clients in the round's final draw
    drawn: list[int] = field(default_factory=list)  # every client drawn for the round, in any attempt
    reported: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)  # drawn but not in the round
    why_dropped: dict[str, str] = field(default_factory=dict)  # client -> why it is not in the round
    late: list[int] = field(default_factory=list)  # dropped for reporting after the deadline (simulation)
    attempts: int = 1
    train_loss: float | None = None
    skipped_steps: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    wall_s: float = 0.0  # opened to closed
    eval_s: float = 0.0
    evals: dict[str, float] = field(default_factory=dict)  # eval_loss and eval_accuracy or eval_rougeL
    flagged: str = ""  # why the divergence guard flagged the round (empty: it did not)
    rolled_back: bool = False  # the round's update was undone: the round applies nothing
    forwards: int = 0  # training forward passes of the clients that computed a result (evaluation aside)
    backwards: int = 0
    epsilon: float | None = None  # dp: the run's epsilon after the round (the most any client has spent)
    checksum: str = ""
    setup_s: float | None = None  # round 0: building model, data and strategy
    peak_rss_mib: float | None = None
    traffic: dict | None = None  # a coordinator's measured gRPC traffic in the round
    schema: int = SCHEMA_VERSION

    def to_json(self) -> dict:
        """A flat row: eval metrics at the top level (as plots and tables read them), absent fields left out."""
        doc = {k: v for k, v in dataclasses.asdict(self).items() if k != "evals" and v is not None}
        return doc | self.evals

    @classmethod
    def from_json(cls, doc: dict) -> RoundRecord:
        doc = _check_schema(doc, f"round record {doc.get('round', '?') if isinstance(doc, dict) else ''}")
        evals = {k: doc[k] for k in EVAL_KEYS if k in doc}
        return cls(**_known(cls, doc), evals=evals)

    @property
    def bytes_per_client(self) -> float:
        return (self.bytes_up + self.bytes_down) / max(1, self.clients)


@dataclass
class RunSummary:
    mode: str  # simulate | server
    strategy: str
    model: str
    data: str
    rounds: int  # rounds logged
    seed: int
    num_clients: int
    clients_per_round: int  # as drawn: sample_fraction and one-byte SPSA decide it, not the configured value
    zero_shot: dict[str, float]
    final: dict[str, float]
    bytes_up_per_client_round: float
    bytes_down_per_client_round: float
    bytes_total: int
    client_rounds: int
    final_checksum: str
    wall_s: float
    backend: str | None = None  # simulation backend
    peak_rss_mib: float | None = None
    workers_peak_rss_mib: list[float] = field(default_factory=list)
    workers_checksums: list[str] = field(default_factory=list)
    traffic_bytes: int | None = None  # a coordinator's measured gRPC bytes, both ways, over the run
    epsilon: float | None = None  # dp: the run's final epsilon (at privacy.delta)
    stopped: str | None = None  # why the run ended before its last round (its privacy budget, or divergence)
    diverged: bool | None = None  # True: the divergence guard ended it (the rounds it kept are logged)
    privacy: dict | None = None  # a private run's constants: levels, noise multiplier, rounds per client
    compute_dtype: str | None = None  # this process's forwards (model.compute_dtype = auto resolved)
    lr_relative: dict | None = None  # strategy.lr_relative: the configured lr, the measured median |g|, the lr
    adapter: str | None = None  # the trainable set when it is an [adapter] (lora rank r), else all weights
    forwards: int | None = None  # the clients' training passes over the run (records that count them)
    backwards: int | None = None
    schema: int = SCHEMA_VERSION

    def to_json(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, doc: dict) -> RunSummary:
        doc = _check_schema(doc, "run summary")
        if doc.get("mode") == "client":
            raise RecordError("this is an edge client's summary; runs are read from a coordinator's or a "
                              "simulation's folder")
        try:
            return cls(**_known(cls, doc))
        except TypeError as e:
            raise RecordError(f"run summary is incomplete ({e})") from None

    @classmethod
    def of(cls, mode: str, cfg: Any, records: list[RoundRecord], wall_s: float, **extra: Any) -> RunSummary:
        """The summary of a run's records (round 0 holds the zero-shot evaluation)."""
        trained = [r for r in records if r.round > 0]
        client_rounds = sum(r.clients for r in trained)
        final = next((r.evals for r in reversed(records) if r.evals), {})
        up, down = sum(r.bytes_up for r in trained), sum(r.bytes_down for r in trained)
        rss = [r.peak_rss_mib for r in records if r.peak_rss_mib is not None]
        traffic = [r.traffic["up"] + r.traffic["down"] for r in trained if r.traffic]
        spent = [r.epsilon for r in trained if r.epsilon is not None]
        extra.setdefault("epsilon", spent[-1] if spent else None)
        from fedseed.precision import forward_dtype

        extra.setdefault("compute_dtype", str(forward_dtype(cfg.model.compute_dtype, cfg.model.device))[6:])
        extra.setdefault("adapter", f"lora rank {cfg.adapter.rank}" if cfg.adapter.kind == "lora" else None)
        passes = [(r.forwards, r.backwards) for r in trained]
        if any(f or b for f, b in passes):
            extra.setdefault("forwards", sum(f for f, _ in passes))
            extra.setdefault("backwards", sum(b for _, b in passes))
        return cls(mode=mode, strategy=cfg.strategy.name, model=cfg.model.name, data=cfg.data.source,
                   rounds=trained[-1].round if trained else 0, seed=cfg.run.seed,
                   num_clients=cfg.federation.num_clients,
                   clients_per_round=max((r.planned for r in trained), default=0),
                   zero_shot=dict(records[0].evals) if records else {}, final=dict(final),
                   bytes_up_per_client_round=up / max(1, client_rounds),
                   bytes_down_per_client_round=down / max(1, client_rounds), bytes_total=up + down,
                   client_rounds=client_rounds, final_checksum=records[-1].checksum if records else "",
                   wall_s=round(wall_s, 1), peak_rss_mib=max(rss) if rss else None,
                   traffic_bytes=sum(traffic) if traffic else None, **extra)


@dataclass
class ClientRoundRecord:
    """An edge client's row per round it was given (metrics.jsonl in its folder)."""

    round: int
    status: str  # accepted | refused: <why>
    train_loss: float
    local_s: float
    start_checksum: str
    bytes_up_before: int = 0  # the client's traffic since its previous round (polls, catch-up, heartbeats)
    bytes_down_before: int = 0
    schema: int = SCHEMA_VERSION


@dataclass
class ClientSummary:
    client: str
    index: int
    run_id: str
    final_round: int
    final_checksum: str
    rounds_trained: int
    bytes_up: int
    bytes_down: int
    mode: str = "client"
    schema: int = SCHEMA_VERSION


def read_rows(text: str, what: str) -> list[RoundRecord]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as e:
            raise RecordError(f"{what}, line {n}: not JSON ({e})") from None
        rows.append(RoundRecord.from_json(doc))
    return rows


def mean_or_none(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None
