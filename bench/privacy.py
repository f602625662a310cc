"""Privacy on the real model: SmolLM2-135M sentiment at the quickstart's settings (20 rounds, 4 of 20 clients a
round, 3 zeroth-order steps each; fp32 forwards, as the table was measured), over seeds, for each private mode
beside the non-private runs it is compared with. Each run is a `fedseed simulate` of its own (resumable: rerun
the script after an interruption, finished runs are kept); the table goes to bench/results/privacy.{json,txt}.

    shared, plain mean     non-private, every client of a round on the same seeds, no bound (secure aggregation's
                           sum without its masks)
    secure aggregation     the same with masks (clip high enough never to bind): equal up to quantization
    dp central eps=8 / 2   clipped at privacy.clip, Gaussian noise added by the coordinator, delta 1e-5
    dp distributed eps=8   each client adds Skellam noise under secure aggregation
    own seeds, plain mean  non-private, each client on seeds of its own: what secure aggregation of dense
                           K-vectors (private seed choice) would give

Usage: python bench/privacy.py [--seeds 0,1,2] [--only "NAME;NAME"] [--table]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "privacy"
CLIP = 40.0  # about the median L2 norm of a client's three scalars in the quickstart (43 measured)
SHARED = {"strategy.shared_seeds": True, "robust.norm_factor": 0.0}
RUNS: dict[str, dict] = {
    "shared, plain mean": SHARED,
    "secure aggregation": SHARED | {"privacy.secure_aggregation": True, "privacy.clip": 1e4},
    "dp central eps=8": SHARED | {"privacy.dp": "central", "privacy.epsilon": 8.0, "privacy.clip": CLIP},
    "dp central eps=2": SHARED | {"privacy.dp": "central", "privacy.epsilon": 2.0, "privacy.clip": CLIP},
    "own seeds, plain mean": {"robust.norm_factor": 0.0},
    "dp distributed eps=8": SHARED | {"privacy.secure_aggregation": True, "privacy.dp": "distributed",
                                      "privacy.epsilon": 8.0, "privacy.clip": CLIP},
}


def folder(name: str, seed: int) -> Path:
    return OUT / f"{name.replace(', ', '-').replace(' ', '_').replace('=', '')}-s{seed}"


def run(name: str, seed: int) -> None:
    out = folder(name, seed)
    if (out / "summary.json").exists():
        return
    sets = [f"{k}={json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else v}"
            for k, v in (RUNS[name] | {"run.seed": seed, "model.compute_dtype": "float32"}).items()]
    resume = ["--resume"] if (out / "log.sqlite").exists() else ["--overwrite"]
    cmd = [sys.executable, "-m", "fedseed.cli", "simulate", str(ROOT / "simulations" / "quickstart.toml"),
           "--out", str(out), "--quiet", *resume, *[a for s in sets for a in ("--set", s)]]
    print(f"== {name}, seed {seed}: {' '.join(cmd[3:])}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def table(seeds: list[int]) -> str:
    rows, doc = [], {}
    for name in RUNS:
        done = [json.loads((folder(name, s) / "summary.json").read_text())
                for s in seeds if (folder(name, s) / "summary.json").exists()]
        if not done:
            continue
        acc = [d["final"]["eval_accuracy"] for d in done]
        per_round = statistics.mean(d["bytes_up_per_client_round"] + d["bytes_down_per_client_round"] for d in done)
        eps = [d.get("epsilon") for d in done]
        rolled = [sum(json.loads(line).get("rolled_back", False)
                      for line in (folder(name, seed) / "metrics.jsonl").read_text().splitlines())
                  for seed in (d["seed"] for d in done)]
        doc[name] = {"seeds": [d["seed"] for d in done], "accuracy": acc, "bytes_per_client_round": per_round,
                     "epsilon": eps, "wall_s": [d["wall_s"] for d in done], "rolled_back_rounds": rolled}
        spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
        eps_text = "-" if eps[0] is None else f"{max(eps):.3f}"
        rows.append(f"| {name} | {statistics.mean(acc):.1%} ± {spread:.1%} ({len(acc)}) | {eps_text} | "
                    f"{per_round:,.0f} | {statistics.mean(rolled):.1f} | "
                    f"{statistics.mean(d['wall_s'] for d in done):,.0f} |")
    (ROOT / "bench" / "results" / "privacy.json").write_text(json.dumps(doc, indent=2) + "\n")
    head = ("| run | accuracy, mean ± sd (seeds) | epsilon (delta 1e-5) | bytes per client per round | rounds rolled "
            "back (of 20) | wall s |\n|---|---|---|---|---|---|")
    return "\n".join([head, *rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--only", default="", help="run names separated by ';'")
    ap.add_argument("--table", action="store_true", help="only print the table of the runs already finished")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [n for n in args.only.split(";") if n] or list(RUNS)
    unknown = set(names) - set(RUNS)
    if unknown:
        sys.exit(f"unknown run names: {sorted(unknown)}; known: {list(RUNS)}")
    if not args.table:
        for seed in seeds:  # every setting at one seed before the next seed
            for name in names:
                run(name, seed)
    text = table(seeds)
    (ROOT / "bench" / "results" / "privacy.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
