"""SyncLog replies, built in worker threads: a reply is O(rounds) of SQLite reads and strategy work, which on the
event loop would hold up every other call (a heartbeat waits behind a full-history SyncLog). Each worker thread
reads through its own read-only connection (sqlite3 binds a connection to its thread; WAL lets it read while
the coordinator commits), every reply inside one read transaction, so it sees one state of the log."""

from __future__ import annotations

import asyncio
import pathlib
import threading
from concurrent.futures import ThreadPoolExecutor

from fedseed import wire
from fedseed.roundlog import RoundLog
from fedseed.strategies.base import Strategy
from fedseed.v1 import coordinator_pb2 as pb

WORKERS = 2  # replies built at once; more wait their turn (each client's calls are also rate-limited)


def round_message(log: RoundLog, strategy: Strategy, r: int, checksum: str) -> pb.GlobalUpdate:
    """Logged round r as every party is sent it (``wire.round_form``)."""
    return wire.round_form(log.update(r), log.client_results(r), strategy.lr(r), checksum, strategy.relayable)


class SyncReader:
    def __init__(self, path: pathlib.Path, strategy: Strategy, workers: int = WORKERS) -> None:
        self.path, self.strategy = path, strategy
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="fedseed-synclog")
        self.local = threading.local()
        self.logs: list[RoundLog] = []
        self.lock = threading.Lock()

    def _log(self) -> RoundLog:
        log = getattr(self.local, "log", None)
        if log is None:
            log = self.local.log = RoundLog(self.path, read_only=True, any_thread=True)
            with self.lock:
                self.logs.append(log)
        return log

    def replies(self, first: int, last: int, merged: bool, checksums: dict[int, str]) -> list[pb.GlobalUpdate]:
        """Rounds first..last as SyncLog sends them: one merged update, or one message per round."""
        log = self._log()
        with log.snapshot():
            if merged and last > first:
                updates = [log.update(r) for r in range(first, last + 1)]
                return [wire.merged(updates, checksums.get(last, ""), self.strategy.seed_pool())]
            return [round_message(log, self.strategy, r, checksums.get(r, "")) for r in range(first, last + 1)]

    async def build(self, first: int, last: int, merged: bool, checksums: dict[int, str]) -> list[pb.GlobalUpdate]:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.replies, first, last, merged,
                                                                 checksums)

    def close(self) -> None:
        self.pool.shutdown(wait=True)  # a reply being built finishes first: its connection is in use
        for log in self.logs:
            log.close()
