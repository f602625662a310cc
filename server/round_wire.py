"""Logged rounds as the coordinator sends them: the smaller of the coefficient form and the relayed client
results, built once per round and cached for the last few rounds (older ones go through SyncLog)."""

from __future__ import annotations

from fedseed import wire
from fedseed.roundlog import RoundLog
from fedseed.strategies.base import Strategy
from fedseed.v1 import coordinator_pb2 as pb

CACHED_ROUNDS = 4


class RoundWire:
    def __init__(self, log: RoundLog, strategy: Strategy) -> None:
        self.log, self.strategy = log, strategy
        # round -> (its wire message, client -> position among the relayed results)
        self._cache: dict[int, tuple[pb.GlobalUpdate, dict[int, int]]] = {}

    def round(self, r: int, checksum: str, lr: float, omit: int | None) -> pb.GlobalUpdate:
        """Round r as sent to a client (a relay leaves out the client's own result when it holds it)."""
        entry = self._cache.get(r)
        if entry is None or entry[0].checksum.hex() != checksum:
            msg = wire.coefficients(self.log.update(r), checksum)
            if self.strategy.relayable:  # relay the clients' scalars when that is smaller (small rounds)
                relay = wire.relayed(r, lr, self.log.client_results(r), checksum)
                msg = relay if relay.ByteSize() <= msg.ByteSize() else msg
            entry = msg, {res.client: i for i, res in enumerate(msg.results)}
            self._cache = {k: v for k, v in self._cache.items() if k > r - CACHED_ROUNDS} | {r: entry}
        cached, positions = entry
        own = positions.get(omit) if omit is not None else None
        if own is None:
            return cached
        msg = pb.GlobalUpdate()
        msg.CopyFrom(cached)
        del msg.results[own]
        msg.own_result_omitted = True
        return msg
