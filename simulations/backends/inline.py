"""The inline backend: clients run one after another in the driver's process, over the driver's own model and
snapshot. Memory does not grow with the number of clients: a client is a seed stream and a data shard."""

from __future__ import annotations

from fedseed.federation import Federation
from fedseed.simulations.backends.base import Backend, local_results
from fedseed.strategies.base import ClientResult, RoundPlan


class InlineBackend(Backend):
    def __init__(self, fed: Federation) -> None:
        self.fed = fed

    def run(self, plan: RoundPlan, clients: list[int]) -> list[ClientResult]:
        return local_results(self.fed, plan, clients)
