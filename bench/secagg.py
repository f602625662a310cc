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
from fedseed.secagg.local import run_locally  # noqa: E402
from fedseed.secagg.protocol import SecAggParams  # noqa: E402
from fedseed.strategies.base import ClientResult  # noqa: E402
from fedseed.wire import SIZED_CHECKSUM, update_request  # noqa: E402


def measure(n: int, k: int, length: int) -> dict:
    p = SecAggParams("bench", 0, 1, 0, length, 3, k)
    rng = np.random.default_rng(0)
    vectors = {c: fld.to_field(rng.integers(-10**6, 10**6, length)) for c in range(n)}
    run = run_locally(p, vectors, drop_after_submit=frozenset(range(0, n, 10)))
    assert np.array_equal(run.sum.total, sum(fld.from_field(v) for v in vectors.values()))

    def request_bytes(payload: bytes) -> int:
        return update_request(ClientResult(1, 0, payload, 1, float("nan"), 0), SIZED_CHECKSUM).ByteSize()

    up = run.bytes_up + sum(request_bytes(y) for y in run.payloads.values())
    t0 = time.perf_counter()
    plain = np.zeros(length, np.uint64)
    for v in vectors.values():
        plain = fld.add(plain, v)
    plain_s = time.perf_counter() - t0
    # private seed choice instead of shared seeds: the same protocol around a dense K-vector (FedKSeed's K = 4096)
    extra = request_bytes(bytes(4 * DENSE_K)) - request_bytes(bytes(4 * length))
    return {"clients": n, "graph": "complete" if not k or k >= n - 1 else f"k={k}", "bytes_up_per_client": up / n,
            "dense_k_bytes_up_per_client": up / n + extra, "bytes_down_per_client": run.bytes_down / n,
            "plain_bytes_up_per_client": sum(request_bytes(fld.pack(v)) for v in vectors.values()) / n,
            "coordinator_s": run.coordinator_s, "plain_sum_s": plain_s, "client_s_each": run.clients_s / n}


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
