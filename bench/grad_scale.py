"""How large zeroth-order scalars are on each model at the quickstart's settings: |g| = |L+ - L-| / (2 eps) at the
base weights, over probes on the clients' batches, side by side for SmolLM2 and Gemma 3 270M. The scale sets how
large a step lr * g * z is, so a learning rate tuned on one model is a different step on another.

    .venv/bin/python bench/grad_scale.py [--probes 24] [--models smollm2-135m-instruct,gemma3-270m]
"""

from __future__ import annotations

import argparse
import json
import statistics

from common import ROOT  # noqa: F401 (puts the repo on sys.path)

from fedseed.config import load_config
from fedseed.federation import build_federation
from fedseed.seeds import derive_seed
from fedseed.zo import spsa_scalar


def scale(model: str, probes: int) -> dict:
    cfg = load_config(str(ROOT / "simulations" / "quickstart.toml"), [f'model.name="{model}"'])
    fed = build_federation(cfg)
    gs, losses = [], []
    for k in range(probes):
        batch = fed.batch_stream(1, k % cfg.federation.num_clients)()
        res = spsa_scalar(fed.state, derive_seed(cfg.run.seed, 0x6A, k), cfg.strategy.eps, cfg.strategy.direction,
                          lambda b=batch: fed.objective.loss(fed.state.model, b))
        fed.state.restore()
        gs.append(abs(res.g))
        losses.append(res.loss)
    gs.sort()
    return {"model": model, "probes": probes, "median_abs_g": statistics.median(gs),
            "p90_abs_g": gs[int(0.9 * (len(gs) - 1))], "max_abs_g": gs[-1], "mean_loss": statistics.mean(losses),
            "step_at_quickstart_lr": cfg.strategy.lr * statistics.median(gs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", type=int, default=24)
    ap.add_argument("--models", default="smollm2-135m-instruct,gemma3-270m")
    args = ap.parse_args()
    rows = [scale(m, args.probes) for m in args.models.split(",")]
    print(f"{'model':24} {'median |g|':>11} {'p90 |g|':>9} {'max |g|':>9} {'loss':>7} {'lr x median |g|':>16}")
    for r in rows:
        print(f"{r['model']:24} {r['median_abs_g']:>11.4g} {r['p90_abs_g']:>9.4g} {r['max_abs_g']:>9.4g} "
              f"{r['mean_loss']:>7.4f} {r['step_at_quickstart_lr']:>16.3g}")
    if len(rows) > 1:
        print(f"median |g| ratio {rows[1]['model']} / {rows[0]['model']}: "
              f"{rows[1]['median_abs_g'] / rows[0]['median_abs_g']:.3g}x")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
