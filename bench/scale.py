"""Simulation at scale: peak RSS of the inline backend with 10 and with 1,000 virtual clients (10% sampled per
round, tiny model; and 1,000 clients with one sampled a round, which isolates N from the clients per round), and
rounds of 100 clients on each backend, side by side in one run.

Each configuration runs in its own `fedseed simulate` process, so a peak RSS belongs to one run only; the driver's
peak is the summary's `peak_rss_mib` (ru_maxrss), workers report theirs. Writes bench/results/scale.{json,txt}.
Usage: python bench/scale.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = ["run.rounds=3", "model.threads=1", "model.backend=eager", "data.partition=iid", "data.eval_size=64",
        "federation.sample_fraction=0.1", "eval.every=3"]


def run(overrides: list[str], out: Path) -> dict:
    cmd = [sys.executable, "-m", "fedseed.cli", "simulate", str(ROOT / "simulations" / "smoke.toml"), "--quiet",
           "--overwrite", "--out", str(out)]
    for o in BASE + overrides:
        cmd += ["--set", o]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][1:]
    summary["round_s"] = min(r["wall_s"] for r in rows)
    return summary


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (10, 1000):
            results[f"inline N={n}"] = run([f"federation.num_clients={n}"], Path(tmp) / f"inline{n}")
        results["inline N=1000, 1/round"] = run(["federation.num_clients=1000", "federation.sample_fraction=0.001"],
                                                Path(tmp) / "inline1000x1")
        for backend in ("processes", "ray"):
            results[f"{backend} N=1000"] = run(["federation.num_clients=1000", f"simulation.backend={backend}",
                                                "simulation.workers=2"], Path(tmp) / backend)
    lines = [f"fedseed bench/scale.py: {os.cpu_count()} CPUs; tiny Llama, smoke config, 10% of clients a round, "
             "4 local steps, 3 rounds",
             f"{'configuration':24s} {'clients/round':>13s} {'driver peak RSS':>16s} {'workers peak RSS':>18s} "
             f"{'fastest round':>14s} {'final checksum':>18s}"]
    for name, s in results.items():
        workers = " + ".join(f"{w:.0f}" for w in s["workers_peak_rss_mib"]) or "-"
        lines.append(f"{name:24s} {s['clients_per_round']:13d} {s['peak_rss_mib']:12.0f} MiB {workers:>14s} MiB "
                     f"{s['round_s']:12.2f} s {s['final_checksum'][:16]:>18s}")
    small, big = results["inline N=10"], results["inline N=1000"]
    one = results["inline N=1000, 1/round"]
    lines.append(f"inline peak RSS, N=1000 / N=10 (10% a round: 100 vs 1 clients): "
                 f"{big['peak_rss_mib'] / small['peak_rss_mib']:.3f}")
    lines.append(f"inline peak RSS, N=1000 / N=10 (one client a round each): "
                 f"{one['peak_rss_mib'] / small['peak_rss_mib']:.3f}")
    ref = results["inline N=1000"]
    for backend in ("processes", "ray"):
        s = results[f"{backend} N=1000"]
        lines.append(f"{backend} N=1000: round time {ref['round_s'] / s['round_s']:.2f}x inline's; checksum "
                     f"{'equals' if s['final_checksum'] == ref['final_checksum'] else 'DIFFERS FROM'} inline's")
    text = "\n".join(lines)
    print(text)
    out = ROOT / "bench" / "results"
    (out / "scale.txt").write_text(text + "\n")
    (out / "scale.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
