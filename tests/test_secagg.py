"""Secure aggregation (fedseed.secagg): the coordinator learns the exact sum of the survivors' vectors and nothing
else, through dropouts after submission; bad messages are refused; the quantized range holds by construction."""

from __future__ import annotations

import numpy as np
import pytest

from fedseed.secagg import crypto
from fedseed.secagg import field as fld
from fedseed.secagg.graph import connected, neighbours, ring_order
from fedseed.secagg.local import run_locally
from fedseed.secagg.protocol import ProtocolError, SecAggClient, SecAggParams, SecAggServer
from fedseed.v1 import coordinator_pb2 as pb


def vectors(n: int, length: int = 5, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {c: rng.integers(-10**6, 10**6, length) for c in range(n)}


def params(length: int = 5, k: int = 0, min_clients: int = 3) -> SecAggParams:
    return SecAggParams("run-a", 7, 3, 0, length, min_clients, k)


def staged(n: int, p: SecAggParams, submit: set[int]) -> tuple[dict[int, SecAggClient], SecAggServer]:
    """Clients through key and share exchange; those in `submit` send their masked vectors."""
    xs = vectors(n, p.length)
    clients = {c: SecAggClient(c, p) for c in range(n)}
    server = SecAggServer(p, list(range(n)))
    for c, cl in clients.items():
        server.add_keys(c, cl.keys())
    server.close_keys()
    for c, cl in clients.items():
        server.add_shares(c, cl.shares(server.roster(c)))
    server.close_shares()
    for c, cl in clients.items():
        cl.receive(server.inbox(c))
        if c in submit:
            server.add_masked(c, cl.mask(fld.to_field(xs[c])))
    server.close_masked()
    return clients, server


def test_three_of_ten_dropping_after_submission_leave_the_exact_sum():
    xs = vectors(10)
    run = run_locally(params(), {c: fld.to_field(v) for c, v in xs.items()}, drop_after_submit=frozenset({1, 4, 7}))
    ssum, payloads, up, down = run.sum, run.payloads, run.bytes_up, run.bytes_down
    assert ssum.failed == "" and ssum.clients == list(range(10))
    assert np.array_equal(ssum.total, sum(xs.values()))
    for c, payload in payloads.items():  # what the coordinator holds of each client is masked
        masked = fld.from_field(fld.unpack(payload, 5))
        assert not np.array_equal(masked, xs[c])
        assert np.abs(masked).max() > 10**8  # uniform over the field, not near the value
    assert up > 0 and down > 0


def test_a_client_dropping_before_submission_is_left_out_of_the_sum():
    p = params()
    xs = vectors(10)
    clients, server = staged(10, p, submit=set(range(10)) - {2})
    survivors = server.survivors()
    assert list(survivors.dropped) == [2] and 2 not in survivors.submitted
    for c in survivors.submitted:
        if c != 5:  # one more leaves before unmasking
            server.add_unmask(c, clients[c].unmask(survivors))
    ssum = server.total()
    assert np.array_equal(ssum.total, sum(v for c, v in xs.items() if c != 2))


def test_sparse_neighbour_graph_is_symmetric_and_sums_exactly():
    g = neighbours(list(range(20)), 4, 7, 3, 0)
    assert all(len(v) == 4 for v in g.values())
    assert all(c in g[d] for c, v in g.items() for d in v)
    xs = vectors(20)
    ssum = run_locally(params(k=4), {c: fld.to_field(v) for c, v in xs.items()},
                       drop_after_submit=frozenset({0, 11})).sum
    assert np.array_equal(ssum.total, sum(xs.values()))


def test_too_few_survivors_release_nothing():
    p = params()
    clients, server = staged(10, p, submit=set(range(10)))
    survivors = server.survivors()
    for c in range(5):  # a majority of each client's holders (6 of 10) is needed
        server.add_unmask(c, clients[c].unmask(survivors))
    ssum = server.total()
    assert ssum.failed.startswith("too few clients stayed") and ssum.clients == [] and ssum.total.size == 0


def test_an_honest_client_refuses_to_unmask_a_sum_over_too_few():
    p = params(min_clients=3)
    clients, _ = staged(4, p, submit={0, 1, 2, 3})
    with pytest.raises(ProtocolError, match="fewer than min_clients"):
        clients[0].unmask(pb.Survivors(submitted=[0, 1], dropped=[2, 3]))
    with pytest.raises(ProtocolError, match="both secrets"):
        clients[0].unmask(pb.Survivors(submitted=[0, 1, 2, 3], dropped=[3]))


def test_the_coordinator_refuses_malformed_messages_and_changes_nothing():
    p = params()
    clients = {c: SecAggClient(c, p) for c in range(4)}
    server = SecAggServer(p, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="32-byte"):
        server.add_keys(0, pb.SecAggKeys(cipher_key=b"x" * 31, mask_key=b"y" * 32))
    with pytest.raises(ProtocolError, match="not drawn"):
        server.add_keys(9, clients[0].keys())
    for c, cl in clients.items():
        server.add_keys(c, cl.keys())
    with pytest.raises(ProtocolError, match="other keys"):
        server.add_keys(0, clients[1].keys())
    server.add_keys(0, clients[0].keys())  # the same message again is harmless
    server.close_keys()
    bundle = clients[0].shares(server.roster(0))
    bad = pb.ShareBundle(shares=list(bundle.shares)[:-1])
    with pytest.raises(ProtocolError, match="exactly one share to each"):
        server.add_shares(0, bad)
    assert server.bundles == {}
    for c, cl in clients.items():
        server.add_shares(c, cl.shares(server.roster(c)) if c else bundle)
    server.close_shares()
    clients[1].receive(server.inbox(1))
    with pytest.raises(ProtocolError, match="20 bytes"):
        server.add_masked(1, b"\0" * 19)
    assert server.masked == {}


def test_a_tampered_share_does_not_decrypt():
    p = params()
    a, b = SecAggClient(0, p), SecAggClient(1, p)
    c = SecAggClient(2, p)
    roster = pb.Roster(clients=[pb.AdvertisedKeys(client=i, keys=x.keys()) for i, x in enumerate((a, b, c))])
    bundle = a.shares(roster)
    b.shares(roster)
    to_b = next(s for s in bundle.shares if s.peer == 1)
    forged = bytearray(to_b.ciphertext)
    forged[5] ^= 1
    with pytest.raises(crypto.ShareError, match="does not decrypt"):
        b.receive(pb.ShareBundle(shares=[pb.EncryptedShare(peer=0, ciphertext=bytes(forged))]))


def test_masks_are_bound_to_the_round():
    key = crypto.derive(b"k" * 32, b"pair-mask", crypto.round_context("run", 1, 0))
    other = crypto.derive(b"k" * 32, b"pair-mask", crypto.round_context("run", 2, 0))
    assert not np.array_equal(crypto.keystream(key, 8), crypto.keystream(other, 8))
    stream = crypto.keystream(key, 4096)
    assert stream.max() < fld.MODULUS and abs(stream.mean() / fld.MODULUS - 0.5) < 0.02


def test_quantized_vectors_stay_in_their_norm_and_sums_do_not_wrap():
    q = fld.Quantizer.for_round(2.0, max_clients=100, noise_std_levels_per_level=3.0)
    rng = np.random.default_rng(1)
    for _ in range(50):
        x = rng.normal(0, 5, 7)
        v = q.quantize(x)
        assert sum(int(e) ** 2 for e in v) <= q.levels ** 2
        assert np.allclose(q.dequantize(v), x * min(1, 2.0 / np.linalg.norm(x)), atol=q.step * 1.01)
    assert 100 * q.levels + fld.TAIL_SIGMAS * 3.0 * q.levels < fld.HALF
    worst = np.full(3, -(fld.HALF - 1))
    assert np.array_equal(fld.from_field(fld.to_field(worst)), worst)
    with pytest.raises(ValueError, match="finite"):
        q.quantize(np.array([1.0, np.nan]))


def test_a_sum_whose_graph_falls_apart_is_never_unmasked():
    # a ring of 8 with one neighbour each side: two clients that share but never submit cut it in two, and the
    # pairwise masks of each part would cancel within it
    p = params(k=2)
    order = ring_order(list(range(8)), p.run_seed, p.round, p.attempt)
    cut = {order[2], order[5]}
    clients, server = staged(8, p, submit=set(range(8)) - cut)
    assert server.stage == "failed" and "falls apart" in server.why_failed
    survivors = pb.Survivors(submitted=sorted(set(range(8)) - cut), dropped=sorted(cut))
    with pytest.raises(ProtocolError, match="falls apart"):
        clients[order[0]].unmask(survivors)
    assert not connected(set(range(8)) - cut, p.graph(list(range(8))))
    assert connected(set(range(8)) - {order[2]}, p.graph(list(range(8))))


def test_a_low_order_key_is_refused():
    server = SecAggServer(params(), [0, 1, 2])
    with pytest.raises(crypto.SecAggError, match="low-order"):
        server.add_keys(0, pb.SecAggKeys(cipher_key=bytes(32), mask_key=SecAggClient(0, params()).keys().mask_key))
    assert server.keys == {}
