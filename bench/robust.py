"""Bounded influence on the real model: SmolLM2-135M sentiment at the quickstart's settings (shortened to
ROUNDS rounds), honest and with one sign-flipping client in every round of 4 (the round's lowest-index client
negates its scalars and claims 2^40 samples), under the default [robust] bounds, with them off, and with each
robust rule. Each run is resumable (rerun the script after an interruption); the table goes to
bench/results/robust.{json,txt}.

Usage: python bench/robust.py [--rounds N] [--only "NAME;NAME"] [--honest runs/quickstart]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fedseed  # noqa: E402
from fedseed.attacks import first_of_round, make_malicious  # noqa: E402

OFF = {"robust.weighting": "samples", "robust.clip_factor": 0.0, "robust.norm_factor": 0.0,
       "robust.divergence_factor": 0.0}
SHARED = {"strategy.shared_seeds": True}
RUNS: dict[str, tuple[bool, dict]] = {  # name -> (one flipper a round?, settings)
    "honest": (False, {}),
    "flip, bounds off": (True, OFF),
    "flip, default bounds": (True, {}),
    "flip, shared seeds, median": (True, SHARED | {"robust.rule": "median"}),
    "flip, shared seeds, trimmed mean": (True, SHARED | {"robust.rule": "trimmed_mean", "robust.trim_fraction": 0.25}),
    "flip, outlier rejection": (True, {"robust.outlier_factor": 2.0}),
}


def run(name: str, flip: bool, settings: dict, rounds: int, out: Path) -> dict:
    strategy_keys = {k.split(".", 1)[1]: v for k, v in settings.items() if k.startswith("strategy.")}
    strategy = fedseed.FedKSeed(num_seeds=4096, local_steps=3, lr=3e-5, eps=1e-3, **strategy_keys)
    if flip:
        make_malicious(strategy, "flip", first_of_round)
    rest = {k: v for k, v in settings.items() if not k.startswith("strategy.")}
    folder = out / name.replace(", ", "-").replace(" ", "_")
    resume = (folder / "log.sqlite").exists() and not (folder / "summary.json").exists()
    t0 = time.time()
    history = fedseed.simulate(config=str(ROOT / "simulations" / "quickstart.toml"), strategy=strategy,
                               settings={"run.rounds": rounds, "model.compute_dtype": "float32", **rest},
                               out=str(folder), overwrite=not resume,
                               resume=resume) if not (folder / "summary.json").exists() else None
    summary = json.loads((folder / "summary.json").read_text())
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {"name": name, "accuracy": summary["final"].get("eval_accuracy"),
            "eval_loss": summary["final"].get("eval_loss"), "zero_shot": summary["zero_shot"].get("eval_accuracy"),
            "rolled_back": [r["round"] for r in rows if r.get("rolled_back")],
            "wall_s": round(summary["wall_s"], 1) if history is None else round(time.time() - t0, 1)}


def honest_row(run: Path, rounds: int) -> dict:
    rows = {r["round"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    if rounds not in rows:
        raise SystemExit(f"{run} has not logged round {rounds} yet")
    return {"name": "honest", "accuracy": rows[rounds]["eval_accuracy"], "eval_loss": rows[rounds]["eval_loss"],
            "zero_shot": rows[0]["eval_accuracy"], "rolled_back": [r for r in range(1, rounds + 1)
                                                                 if rows[r].get("rolled_back")],
            "wall_s": round(sum(rows[r]["wall_s"] + rows[r].get("eval_s", 0) for r in range(1, rounds + 1)), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="")
    ap.add_argument("--honest", default="", help="a quickstart run (20 rounds, default settings) whose round "
                    "--rounds is the honest row: with a constant lr its first rounds are those of a shorter run")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench-robust"))
    args = ap.parse_args()
    names = [n for n in RUNS if (not args.only or n in args.only.split(";")) and not (args.honest and n == "honest")]
    results = [honest_row(Path(args.honest), args.rounds)] if args.honest else []
    for name in names:
        flip, settings = RUNS[name]
        results.append(run(name, flip, settings, args.rounds, Path(args.out)))
        print(json.dumps(results[-1]), flush=True)
    lines = [f"SmolLM2-135M-Instruct, sentiment, quickstart settings, {args.rounds} rounds, 4 clients a round; "
             "flip: one client a round negates its scalars and claims 2^40 samples",
             f"{'run':36s} {'accuracy':>9s} {'eval loss':>10s}  rolled back",
             f"{'zero-shot':36s} {results[0]['zero_shot']:9.3f}"]
    lines += [f"{r['name']:36s} {r['accuracy']:9.3f} {r['eval_loss']:10.4f}  {r['rolled_back'] or '-'}"
              for r in results]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.only or args.honest:
        (ROOT / "bench" / "results" / "robust.json").write_text(json.dumps(results, indent=2) + "\n")
        (ROOT / "bench" / "results" / "robust.txt").write_text(text)


if __name__ == "__main__":
    main()
