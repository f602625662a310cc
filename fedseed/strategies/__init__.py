"""Strategies, one per file, behind the interface in ``base``."""

from __future__ import annotations

from fedseed.layout import Layout
from fedseed.strategies.base import Strategy, StrategyConfig
from fedseed.strategies.fedavg import FedAvg
from fedseed.strategies.fedkseed import FedKSeed
from fedseed.strategies.fedkseed_pro import FedKSeedPro
from fedseed.strategies.ferret import Ferret
from fedseed.strategies.mezo import MeZO
from fedseed.strategies.onebyte import OneByte

REGISTRY: dict[str, type[Strategy]] = {s.name: s for s in (FedKSeed, FedKSeedPro, Ferret, OneByte, FedAvg, MeZO)}


def strategy_class(name: str) -> type[Strategy]:
    if name not in REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def build_strategy(cfg: StrategyConfig, run_seed: int, total_rounds: int, num_clients: int,
                   layout: Layout) -> Strategy:
    cls = strategy_class(cfg.name)
    if cls is Ferret:
        return Ferret(cfg, run_seed, total_rounds, num_clients, layout=layout)  # type: ignore[arg-type]
    return cls(cfg, run_seed, total_rounds, num_clients)
