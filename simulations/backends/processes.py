"""The processes backend: a local pool of worker processes, each with its own model, clients dealt round-robin.

Workers are spawned (not forked: a forked torch with live threads can deadlock) and talk over pipes. Every round,
each worker first applies the global updates it has not seen, so all of them hold the driver's exact state.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from multiprocessing.connection import Connection

from fedseed.config import Config
from fedseed.simulations.backends.base import ClientWorker, WorkerPool
from fedseed.strategies.base import ClientResult, GlobalUpdate, RoundPlan


def _serve(cfg: Config, conn: Connection) -> None:
    try:
        worker = ClientWorker(cfg)
    except BaseException:  # noqa: BLE001 (any failure must reach the driver, not hang it)
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", None))
    while True:
        try:
            op, args = conn.recv()
        except EOFError:  # the driver is gone
            return
        if op == "stop":
            return
        try:
            conn.send(("ok", getattr(worker, op)(*args)))
        except BaseException:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))


class ProcessBackend(WorkerPool):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs = []
        for i in range(cfg.simulation.workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(cfg, child), name=f"fedseed-worker-{i}", daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        try:
            for i in range(len(self.conns)):
                self._reply(i)
        except BaseException:
            self.close()
            raise

    def _reply(self, i: int) -> object:
        try:
            status, value = self.conns[i].recv()
        except EOFError:
            self.procs[i].join(5)
            raise RuntimeError(f"simulation worker {i} exited (code {self.procs[i].exitcode})") from None
        if status == "error":
            raise RuntimeError(f"simulation worker {i} failed:\n{value}")
        return value

    def _call(self, op: str, args_for: list[tuple]) -> list:
        for conn, args in zip(self.conns, args_for):
            conn.send((op, args))
        return [self._reply(i) for i in range(len(self.conns))]

    def size(self) -> int:
        return len(self.conns)

    def call_work(self, updates: list[GlobalUpdate], plan: RoundPlan,
                  shares: list[list[int]]) -> list[list[ClientResult]]:
        return self._call("work", [(updates, plan, share) for share in shares])

    def call_all(self, method: str) -> list:
        return self._call(method, [()] * len(self.conns))

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs):
            try:
                if proc.is_alive():
                    conn.send(("stop", ()))
            except OSError:
                pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
        for conn in self.conns:
            conn.close()
        self.conns, self.procs = [], []
