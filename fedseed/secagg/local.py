"""Secure aggregation with every party in one process: the simulation's round runs the same client and
coordinator objects and messages as a federation over gRPC, so its sums and its bytes are the network's."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from fedseed.secagg.protocol import SecAggClient, SecAggParams, SecAggServer, SecureSum
from fedseed.v1 import coordinator_pb2 as pb

T = TypeVar("T")


@dataclass
class LocalRound:
    """One round's protocol run in one process: the sum, each client's masked vector, the protocol's bytes
    (SecAgg requests and replies, masked vectors excluded) and the time spent on each side."""

    sum: SecureSum
    payloads: dict[int, bytes] = field(default_factory=dict)
    bytes_up: int = 0
    bytes_down: int = 0
    coordinator_s: float = 0.0
    clients_s: float = 0.0  # all clients together

    def timed(self, side: str, fn: Callable[..., T], *args: object) -> T:
        t0 = time.perf_counter()
        out = fn(*args)
        setattr(self, side, getattr(self, side) + time.perf_counter() - t0)
        return out


def run_locally(params: SecAggParams, vectors: dict[int, np.ndarray],
                drop_after_submit: frozenset[int] = frozenset()) -> LocalRound:
    """The round's secure sum over `vectors` (client -> field vector). Clients in `drop_after_submit` submit and
    then take no part in unmasking."""
    clients = {c: SecAggClient(c, params) for c in sorted(vectors)}
    server = SecAggServer(params, sorted(vectors))
    run = LocalRound(SecureSum([], np.zeros(0, np.int64)))

    def request(**stage: object) -> None:
        run.bytes_up += pb.SecAggRequest(round=params.round, attempt=params.attempt, **stage).ByteSize()

    def reply(**stage: object) -> None:
        run.bytes_down += pb.SecAggReply(**stage).ByteSize()

    def coordinator(fn: Callable[..., T], *args: object) -> T:
        return run.timed("coordinator_s", fn, *args)

    def client(fn: Callable[..., T], *args: object) -> T:
        return run.timed("clients_s", fn, *args)

    for c, agent in clients.items():
        keys = client(agent.keys)
        request(keys=keys)
        coordinator(server.add_keys, c, keys)
    coordinator(server.close_keys)
    if server.stage == "failed":
        run.sum.failed = server.why_failed
        return run
    for c, agent in clients.items():
        roster = coordinator(server.roster, c)
        reply(roster=roster)
        bundle = client(agent.shares, roster)
        request(shares=bundle)
        coordinator(server.add_shares, c, bundle)
    coordinator(server.close_shares)
    for c, agent in clients.items():
        inbox = coordinator(server.inbox, c)
        reply(inbox=inbox)
        client(agent.receive, inbox)
        run.payloads[c] = client(agent.mask, vectors[c])
        coordinator(server.add_masked, c, run.payloads[c])
    coordinator(server.close_masked)
    if server.stage == "failed":
        run.sum.failed = server.why_failed
        return run
    survivors = coordinator(server.survivors)
    for c, agent in clients.items():
        request(await_survivors=True)
        reply(survivors=survivors)
        if c in drop_after_submit:
            continue
        bundle = client(agent.unmask, survivors)
        request(unmask=bundle)
        coordinator(server.add_unmask, c, bundle)
        reply(done=True)
    run.sum = coordinator(server.total)
    return run
