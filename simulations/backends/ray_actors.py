"""The Ray backend: one Ray actor per worker, each with its own model, on a local instance or an existing cluster.

`simulation.ray_address` empty starts a private local instance for the run (even where a cluster runs); "auto"
joins the cluster `ray start` made on this machine; "ray://HOST:10001" connects a remote cluster's client server.
Every node needs fedseed (and the model and data packages) installed in the same Python version. Each actor
reserves one logical CPU, so the cluster must have `simulation.workers` of them.
"""

from __future__ import annotations

import os

from fedseed.config import Config
from fedseed.simulations.backends.base import ClientWorker, WorkerPool
from fedseed.strategies.base import ClientResult, GlobalUpdate, RoundPlan


class RayBackend(WorkerPool):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        try:
            import ray
        except ImportError:
            raise RuntimeError("simulation.backend = 'ray' needs Ray: pip install 'ray==2.60.0'") from None
        self.ray = ray
        self.owns_instance = not ray.is_initialized()
        if self.owns_instance:
            # "local" rather than None: never join a cluster found through RAY_ADDRESS or `ray start` unasked
            address = cfg.simulation.ray_address or "local"
            local = {"num_cpus": max(cfg.simulation.workers, os.cpu_count() or 1)} if address == "local" else {}
            ray.init(address=address, include_dashboard=False, logging_level="warning", **local)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < cfg.simulation.workers:  # an actor that finds no CPU waits for one forever
            if self.owns_instance:
                ray.shutdown()
            raise RuntimeError(f"the Ray cluster has {cpus} CPUs and simulation.workers = {cfg.simulation.workers} "
                               "actors need one each: lower simulation.workers or add nodes")
        actor = ray.remote(num_cpus=1)(ClientWorker)
        self.actors = [actor.remote(cfg) for _ in range(cfg.simulation.workers)]
        try:
            self.call_all("checksum")  # surfaces a failed model build here
        except BaseException:
            self.close()
            raise

    def size(self) -> int:
        return len(self.actors)

    def call_work(self, updates: list[GlobalUpdate], plan: RoundPlan,
                  shares: list[list[int]]) -> list[list[ClientResult]]:
        ref = self.ray.put(updates)  # one copy in the object store for every actor
        return self.ray.get([a.work.remote(ref, plan, share) for a, share in zip(self.actors, shares)])

    def call_all(self, method: str) -> list:
        return self.ray.get([getattr(a, method).remote() for a in self.actors])

    def close(self) -> None:
        for a in getattr(self, "actors", []):
            self.ray.kill(a)
        self.actors = []
        if self.owns_instance and self.ray.is_initialized():
            self.ray.shutdown()
