"""Secure aggregation with every party in one process: the simulation's round runs the same client and
coordinator objects and messages as a federation over gRPC, so its sums and its bytes are the network's."""

from __future__ import annotations

import numpy as np

from fedseed.secagg.protocol import SecAggClient, SecAggParams, SecAggServer, SecureSum
from fedseed.v1 import coordinator_pb2 as pb


def run_locally(params: SecAggParams, vectors: dict[int, np.ndarray],
                drop_after_submit: frozenset[int] = frozenset()) -> tuple[SecureSum, dict[int, bytes], int, int]:
    """The round's secure sum over `vectors` (client -> field vector); the masked payloads; and the protocol's
    bytes up and down (SecAgg requests and replies, masked payloads excluded). Clients in `drop_after_submit`
    submit and then take no part in unmasking."""
    clients = {c: SecAggClient(c, params) for c in sorted(vectors)}
    server = SecAggServer(params, sorted(vectors))
    up = down = 0

    def request(**stage: object) -> None:
        nonlocal up
        up += pb.SecAggRequest(round=params.round, attempt=params.attempt, **stage).ByteSize()

    def reply(**stage: object) -> None:
        nonlocal down
        down += pb.SecAggReply(**stage).ByteSize()

    for c, client in clients.items():
        keys = client.keys()
        request(keys=keys)
        server.add_keys(c, keys)
    server.close_keys()
    if server.stage == "failed":
        return SecureSum([], np.zeros(0, np.int64), server.why_failed), {}, up, down
    for c, client in clients.items():
        roster = server.roster(c)
        reply(roster=roster)
        bundle = client.shares(roster)
        request(shares=bundle)
        server.add_shares(c, bundle)
    server.close_shares()
    payloads = {}
    for c, client in clients.items():
        inbox = server.inbox(c)
        reply(inbox=inbox)
        client.receive(inbox)
        payloads[c] = client.mask(vectors[c])
        server.add_masked(c, payloads[c])
    server.close_masked()
    survivors = server.survivors()
    for c, client in clients.items():
        request(await_survivors=True)
        reply(survivors=survivors)
        if c in drop_after_submit:
            continue
        bundle = client.unmask(survivors)
        request(unmask=bundle)
        server.add_unmask(c, bundle)
        reply(done=True)
    return server.total(), payloads, up, down
