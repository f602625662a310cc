"""Serialized bytes per client per round over real gRPC, FedKSeed at K = 4096, tau = 200, 10 clients a round,
for the fp32, fp16 and one-byte scalar codecs side by side (coordinator + 10 client processes on loopback).

    .venv/bin/python bench/wire_bytes.py [--rounds 3] [--out runs/bench-wire-bytes]

Bytes do not depend on the model, so the tiny model keeps this to minutes; the paper's fp32 equivalent
(FedKSeed, Qin et al. 2024: K fp32 scalars down + tau (index, scalar) pairs up) is 4096*4 + 200*8 = 17,984 B.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics

from fedseed.simulations.loopback import run_loopback

PAPER_FP32_BYTES = 4096 * 4 + 200 * 8
SETTINGS = ["strategy.num_seeds=4096", "strategy.local_steps=200", "federation.num_clients=10",
            "federation.clients_per_round=10", "server.min_clients=10", "federation.batch_size=4",
            "model.max_length=32", "data.eval_size=32",
            "model.trainable=['norm']"]  # bytes do not depend on d; a small d keeps applying 1,600 seeds quick


def measure(codec: str, rounds: int, out: pathlib.Path) -> dict:
    summary = run_loopback("simulations/loopback.toml", [*SETTINGS, f"run.rounds={rounds}",
                                                         f"strategy.codec={codec}"], str(out / codec),
                           overwrite=True, quiet=True)
    rows = [json.loads(x) for x in (out / codec / "server" / "metrics.jsonl").read_text().splitlines()][1:]
    steady = rows[1:]  # round 1 also carries every client's Join (the run configuration)
    # measured: every gRPC call of the round (signatures, polls, heartbeats); messages: the round's own messages
    up = statistics.mean(r["traffic"]["up"] / r["clients"] for r in steady)
    down = statistics.mean(r["traffic"]["down"] / r["clients"] for r in steady)
    messages = statistics.mean((r["bytes_up"] + r["bytes_down"]) / r["clients"] for r in steady)
    round1 = (rows[0]["traffic"]["up"] + rows[0]["traffic"]["down"]) / rows[0]["clients"]
    return {"codec": codec, "bytes_per_client_round": up + down, "up": up, "down": down,
            "round_messages_per_client": messages, "round1_per_client": round1, "final": summary["final"],
            "by_method_last_round": steady[-1]["traffic"]["by_method"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="runs/bench-wire-bytes")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    results = [measure(c, args.rounds, out) for c in ("fp32", "fp16", "onebyte")]
    print(f"{'codec':8} {'B/client/round':>15} {'up':>8} {'down':>8} {'vs paper fp32':>14} {'eval_accuracy':>14}")
    for r in results:
        print(f"{r['codec']:8} {r['bytes_per_client_round']:>15.0f} {r['up']:>8.0f} {r['down']:>8.0f} "
              f"{PAPER_FP32_BYTES / r['bytes_per_client_round']:>13.1f}x "
              f"{r['final'].get('eval_accuracy', float('nan')):>14.4f}")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
