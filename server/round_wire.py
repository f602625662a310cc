"""Logged rounds as the coordinator sends them (``wire.round_form``), built once per round and cached for the
last few rounds (older ones go through SyncLog)."""

from __future__ import annotations

from fedseed import wire
from fedseed.roundlog import RoundLog
from fedseed.server.sync_reader import round_message
from fedseed.strategies.base import Strategy
from fedseed.v1 import coordinator_pb2 as pb

CACHED_ROUNDS = 4


class RoundWire:
    def __init__(self, log: RoundLog, strategy: Strategy) -> None:
        self.log, self.strategy = log, strategy
        self._cache: dict[int, pb.GlobalUpdate] = {}

    def round(self, r: int, checksum: str, omit: int | None) -> pb.GlobalUpdate:
        """Round r as sent to a client (a relay leaves out the client's own result when it holds it)."""
        msg = self._cache.get(r)
        if msg is None or msg.checksum.hex() != checksum:
            msg = round_message(self.log, self.strategy, r, checksum)
            self._cache = {k: v for k, v in self._cache.items() if k > r - CACHED_ROUNDS} | {r: msg}
        return msg if omit is None else wire.without_own(msg, omit)
