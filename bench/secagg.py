"""Secure aggregation's overhead at 10 and 100 clients a round: bytes per client per round (the protocol's
messages and the masked vector, as the simulation and the coordinator count them) and the coordinator's time
(key and share routing, and unmasking: rebuilding secrets and removing masks), beside a plain sum of the same
vectors, measured side by side in one run. Every client's vector is FedKSeed's three scalars; "complete" is
Bonawitz et al.'s graph (every client neighbours every other), k=N SecAgg+'s sparse one. A share of the clients
(10%) drop after submitting, so the dropout path is timed too.

Usage: python bench/secagg.py [--clients 10,100] [--length 3]; writes bench/results/secagg.{json,txt}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DENSE_K = 4096
sys.path.insert(0, str(ROOT))

from fedseed.secagg import field as fld  # noqa: E402
from fedseed.secagg.protocol import SecAggClient, SecAggParams, SecAggServer  # noqa: E402
from fedseed.strategies.base import ClientResult  # noqa: E402
from fedseed.v1 import coordinator_pb2 as pb  # noqa: E402
from fedseed.wire import SIZED_CHECKSUM, update_request  # noqa: E402


def measure(n: int, k: int, length: int) -> dict:
    p = SecAggParams("bench", 0, 1, 0, length, 3, k)
    rng = np.random.default_rng(0)
    vectors = {c: fld.to_field(rng.integers(-10**6, 10**6, length)) for c in range(n)}
    drop = set(range(0, n, 10))
    clients = {c: SecAggClient(c, p) for c in range(n)}
    server = SecAggServer(p, list(range(n)))
    coordinator_s, up, down = 0.0, 0, 0

    def timed(fn, *args):  # noqa: ANN001, ANN202
        nonlocal coordinator_s
        t0 = time.perf_counter()
        out = fn(*args)
        coordinator_s += time.perf_counter() - t0
        return out

    for c, cl in clients.items():
        keys = cl.keys()
        up += pb.SecAggRequest(round=1, keys=keys).ByteSize()
        timed(server.add_keys, c, keys)
    timed(server.close_keys)
    rosters = {c: timed(server.roster, c) for c in clients}
    t_client = time.perf_counter()
    bundles = {c: cl.shares(rosters[c]) for c, cl in clients.items()}
    client_s = time.perf_counter() - t_client
    for c, b in bundles.items():
        down += pb.SecAggReply(roster=rosters[c]).ByteSize()
        up += pb.SecAggRequest(round=1, shares=b).ByteSize()
        timed(server.add_shares, c, b)
    timed(server.close_shares)
    for c, cl in clients.items():
        inbox = timed(server.inbox, c)
        down += pb.SecAggReply(inbox=inbox).ByteSize()
        t0 = time.perf_counter()
        cl.receive(inbox)
        payload = cl.mask(vectors[c])
        client_s += time.perf_counter() - t0
        up += update_request(ClientResult(1, c, payload, 1, float("nan"), 0), SIZED_CHECKSUM).ByteSize()
        timed(server.add_masked, c, payload)
    timed(server.close_masked)
    survivors = timed(server.survivors)
    for c, cl in clients.items():
        up += pb.SecAggRequest(round=1, await_survivors=True).ByteSize()
        down += pb.SecAggReply(survivors=survivors).ByteSize()
        if c in drop:
            continue
        bundle = cl.unmask(survivors)
        up += pb.SecAggRequest(round=1, unmask=bundle).ByteSize()
        down += pb.SecAggReply(done=True).ByteSize()
        timed(server.add_unmask, c, bundle)
    total = timed(server.total)
    assert np.array_equal(total.total, sum(fld.from_field(v) for v in vectors.values()))
    t0 = time.perf_counter()
    plain = np.zeros(length, np.uint64)
    for v in vectors.values():
        plain = fld.add(plain, v)
    plain_s = time.perf_counter() - t0
    plain_up = sum(update_request(ClientResult(1, c, fld.pack(v), 1, float("nan"), 0), SIZED_CHECKSUM).ByteSize()
                   for c, v in vectors.items())
    # private seed choice instead of shared seeds: the same protocol around a dense K-vector (FedKSeed's K = 4096)
    extra = (update_request(ClientResult(1, 0, bytes(4 * DENSE_K), 1, float("nan"), 0), SIZED_CHECKSUM).ByteSize()
             - update_request(ClientResult(1, 0, bytes(4 * length), 1, float("nan"), 0), SIZED_CHECKSUM).ByteSize())
    return {"clients": n, "graph": "complete" if not k or k >= n - 1 else f"k={k}", "bytes_up_per_client": up / n,
            "dense_k_bytes_up_per_client": up / n + extra,
            "bytes_down_per_client": down / n, "plain_bytes_up_per_client": plain_up / n,
            "coordinator_s": coordinator_s, "plain_sum_s": plain_s, "client_s_each": client_s / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="10,100")
    ap.add_argument("--length", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for n in (int(x) for x in args.clients.split(",")):
        for k in sorted({0, *([8] if n > 10 else [])}):
            rows.append(measure(n, k, args.length))
    lines = ["| clients | graph | up B / client | down B / client | dense K-vector up B / client | plain up B / client "
             "| coordinator s | plain sum s | client s (each) |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['clients']} | {r['graph']} | {r['bytes_up_per_client']:,.0f} | {r['bytes_down_per_client']:,.0f} "
              f"| {r['dense_k_bytes_up_per_client']:,.0f} | {r['plain_bytes_up_per_client']:,.0f} | "
              f"{r['coordinator_s']:.3f} | {r['plain_sum_s']:.6f} | {r['client_s_each']:.4f} |" for r in rows]
    out = ROOT / "bench" / "results"
    (out / "secagg.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "secagg.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
