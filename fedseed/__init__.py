"""fedseed: federated full-parameter fine-tuning of language models by exchanging seeds and scalars.

The Python surface: ``simulate`` (a federation on one machine from objects, returning its ``History``), the
strategies as classes constructed with their settings, ``register_strategy`` for strategies of your own,
``dataset_from`` for data, and the records a run writes. Names load on first use, so ``import fedseed`` (and
the command line) stays quick.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("fedseed")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

_EXPORTS = {
    "simulate": "fedseed.api", "History": "fedseed.api",
    "Dataset": "fedseed.data", "Example": "fedseed.data", "dataset_from": "fedseed.data",
    "RoundRecord": "fedseed.records", "RunSummary": "fedseed.records",
    "FedAvg": "fedseed.strategies", "FedIT": "fedseed.strategies", "FedKSeed": "fedseed.strategies",
    "FedKSeedPro": "fedseed.strategies",
    "Ferret": "fedseed.strategies", "FZOO": "fedseed.strategies", "MeZO": "fedseed.strategies",
    "OneByte": "fedseed.strategies",
    "register_strategy": "fedseed.strategies", "strategy_class": "fedseed.strategies",
    "RunSetup": "fedseed.strategies.base", "Strategy": "fedseed.strategies.base",
    "StrategyConfig": "fedseed.strategies.base",
}
__all__ = ["Dataset", "Example", "FedAvg", "FedIT", "FedKSeed", "FedKSeedPro", "Ferret", "FZOO", "History", "MeZO",
           "OneByte", "RoundRecord", "RunSetup", "RunSummary", "Strategy", "StrategyConfig", "__version__",
           "dataset_from", "register_strategy", "simulate", "strategy_class"]

if TYPE_CHECKING:
    from fedseed.api import History, simulate
    from fedseed.data import Dataset, Example, dataset_from
    from fedseed.records import RoundRecord, RunSummary
    from fedseed.strategies import (
        FZOO,
        FedAvg,
        FedIT,
        FedKSeed,
        FedKSeedPro,
        Ferret,
        MeZO,
        OneByte,
        register_strategy,
        strategy_class,
    )
    from fedseed.strategies.base import RunSetup, Strategy, StrategyConfig


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fedseed' has no attribute {name!r}")
