"""The interface every simulation backend implements, and the worker that runs clients on one model.

A worker holds a model and an exact flat state. It follows the global state by applying every round's global
update in order (the same fixed-point sums the driver applies), so a client's local work starts from bit-identical
weights whichever worker runs it; results are returned sorted by client, so aggregation order never depends on
the schedule.
"""

from __future__ import annotations

import os
import resource
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from fedseed.config import Config
from fedseed.strategies.base import ClientResult, GlobalUpdate, RoundPlan

if TYPE_CHECKING:
    from fedseed.federation import Federation


def reset_peak_rss() -> None:
    """Start this process's peak-RSS count afresh (Linux), so a run's peak is its own, not an earlier run's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mib() -> float:
    """This process's peak resident set size since the last reset: VmHWM on Linux, else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_threads(cfg: Config) -> int:
    """Torch threads per worker: simulation.worker_threads, else model.threads, else the cores shared out."""
    if cfg.simulation.worker_threads:
        return cfg.simulation.worker_threads
    if cfg.model.threads:
        return cfg.model.threads
    return max(1, (os.cpu_count() or 1) // cfg.simulation.workers)


def local_results(fed: Federation, plan: RoundPlan, clients: list[int]) -> list[ClientResult]:
    """Each client's local work from the exact global state, leaving the state exact again."""
    results = []
    for client in sorted(clients):
        fed.state.restore()
        results.append(fed.strategy.local_work(fed.context(plan.round, client), plan, client))
    fed.state.restore()
    return results


class ClientWorker:
    """One model that runs the clients it is given; built from the run's config in its own process."""

    def __init__(self, cfg: Config) -> None:
        import torch

        from fedseed.federation import build_federation

        torch.set_num_threads(worker_threads(cfg))
        cfg.model.threads = worker_threads(cfg)
        self.fed = build_federation(cfg)

    def work(self, updates: list[GlobalUpdate], plan: RoundPlan, clients: list[int]) -> list[ClientResult]:
        for update in updates:
            self.fed.strategy.apply(self.fed.state, update)  # an empty round only re-materialises
        return local_results(self.fed, plan, clients)

    def checksum(self) -> str:
        return self.fed.state.checksum()

    def peak_rss_mib(self) -> float:
        return peak_rss_mib()


class Backend(ABC):
    """Runs a round's clients. The driver applies each global update itself, then hands it over with `push`."""

    follows_updates = False  # True: workers hold their own state and need every update pushed

    @abstractmethod
    def run(self, plan: RoundPlan, clients: list[int]) -> list[ClientResult]:
        """Local work of `clients` for `plan`, sorted by client, from the state after every pushed update."""

    def push(self, update: GlobalUpdate) -> None:  # noqa: B027 (inline: the driver's state is the workers')
        """A global update the driver has applied; workers apply it before their next clients."""

    def sync(self) -> None:  # noqa: B027
        """Have every worker apply the pushed updates now, not with its next clients."""

    def close(self) -> None:  # noqa: B027
        """Stop workers."""

    def workers_peak_rss_mib(self) -> list[float]:
        """Peak RSS of each worker process (empty for inline: the driver is the worker)."""
        return []

    def workers_checksums(self) -> list[str]:
        """Each worker's state checksum after every pushed update (empty for inline)."""
        return []


class WorkerPool(Backend):
    """A backend of workers that each hold a model: updates queue up and travel with the workers' next call,
    clients are dealt round-robin in client order, and results come back sorted by client."""

    follows_updates = True

    def __init__(self) -> None:
        self.pending: list[GlobalUpdate] = []

    @abstractmethod
    def size(self) -> int:
        """Number of workers."""

    @abstractmethod
    def call_work(self, updates: list[GlobalUpdate], plan: RoundPlan,
                  shares: list[list[int]]) -> list[list[ClientResult]]:
        """ClientWorker.work on every worker at once, worker i getting shares[i]."""

    @abstractmethod
    def call_all(self, method: str) -> list:
        """A no-argument ClientWorker method on every worker."""

    def run(self, plan: RoundPlan, clients: list[int]) -> list[ClientResult]:
        ordered, n = sorted(clients), self.size()
        pending, self.pending = self.pending, []
        replies = self.call_work(pending, plan, [ordered[i::n] for i in range(n)])
        return sorted((r for rs in replies for r in rs), key=lambda r: r.client)

    def push(self, update: GlobalUpdate) -> None:
        self.pending.append(update)

    def sync(self) -> None:
        self.run(RoundPlan(0, [], 0.0), [])

    def workers_checksums(self) -> list[str]:
        self.sync()
        return self.call_all("checksum")

    def workers_peak_rss_mib(self) -> list[float]:
        return self.call_all("peak_rss_mib")
