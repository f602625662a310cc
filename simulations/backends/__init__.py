"""Where a simulation's clients run: in the driver's process, in a local worker pool, or on Ray actors."""

from __future__ import annotations

from fedseed.config import Config
from fedseed.federation import Federation
from fedseed.simulations.backends.base import Backend


def make_backend(cfg: Config, fed: Federation) -> Backend:
    """The backend named by simulation.backend; `fed` is the driver's own federation (inline runs clients on it)."""
    name = cfg.simulation.backend
    if name == "inline":
        from fedseed.simulations.backends.inline import InlineBackend

        return InlineBackend(fed)
    if name == "processes":
        from fedseed.simulations.backends.processes import ProcessBackend

        return ProcessBackend(cfg)
    if name == "ray":
        from fedseed.simulations.backends.ray_actors import RayBackend

        return RayBackend(cfg)
    raise ValueError(f"unknown simulation backend {name!r}")
