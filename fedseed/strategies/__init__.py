"""Strategies, one per file, behind the interface in ``base``, and the registry that names them.

A strategy from another package registers itself with ``register_strategy`` (when its module is imported) or
through the ``fedseed.strategies`` entry-point group, which is read the first time a name is not found, so a
configuration file can name a strategy that fedseed does not ship:

    [project.entry-points."fedseed.strategies"]
    my-zo = "my_package.my_zo:MyZO"
"""

from __future__ import annotations

from importlib.metadata import entry_points

from fedseed.strategies.base import Strategy, StrategyConfig
from fedseed.strategies.fedavg import FedAvg
from fedseed.strategies.fedit import FedIT
from fedseed.strategies.fedkseed import FedKSeed
from fedseed.strategies.fedkseed_pro import FedKSeedPro
from fedseed.strategies.ferret import Ferret
from fedseed.strategies.fzoo import FZOO
from fedseed.strategies.mezo import MeZO
from fedseed.strategies.onebyte import OneByte

ENTRY_POINTS = "fedseed.strategies"
REGISTRY: dict[str, type[Strategy]] = {}
_entry_points_read = False


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Make a strategy class known by its ``name`` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)) or not cls.name:
        raise ValueError(f"{cls!r} is not a Strategy subclass with a name")
    if not issubclass(cls.config_class, StrategyConfig):
        raise ValueError(f"strategy {cls.name}: config_class must subclass StrategyConfig")
    known = REGISTRY.get(cls.name)
    if known is not None and known is not cls:
        raise ValueError(f"strategy name {cls.name!r} is taken by {known.__module__}.{known.__qualname__}")
    REGISTRY[cls.name] = cls
    return cls


def _read_entry_points() -> None:
    global _entry_points_read
    _entry_points_read = True
    for ep in entry_points(group=ENTRY_POINTS):
        try:
            register_strategy(ep.load())
        except Exception as e:  # noqa: BLE001 -- whatever a broken plugin raises, name the plugin
            raise ValueError(f"strategy entry point {ep.name!r} ({ep.value}) failed to load: {e}") from e


def strategy_class(name: str) -> type[Strategy]:
    if name not in REGISTRY and not _entry_points_read:
        _read_entry_points()
    if name not in REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def all_strategies() -> dict[str, type[Strategy]]:
    """Every strategy known, those of installed packages' entry points included."""
    if not _entry_points_read:
        _read_entry_points()
    return dict(REGISTRY)


def build_strategy(cfg: StrategyConfig) -> Strategy:
    """The configured strategy (bind it to a run with ``setup``)."""
    return strategy_class(cfg.name)(cfg)


for _cls in (FedKSeed, FedKSeedPro, Ferret, OneByte, FedAvg, FedIT, MeZO, FZOO):
    register_strategy(_cls)
