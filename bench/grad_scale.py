"""How large zeroth-order scalars are on each model at the quickstart's settings: |g| = |L+ - L-| / (2 eps) at the
base weights, over probes on the clients' batches, side by side for SmolLM2 and Gemma 3 270M. The scale sets how
large a step lr * g * z is, so a learning rate tuned on one model is a different step on another
(strategy.lr_relative divides it out). The tail relative to the median sets robust.clip_factor's default: for
each factor, the share of scalars a quickstart round (4 clients x 3 steps) would clip at that factor x its own
median |g|, over rounds drawn from the probes.

    .venv/bin/python bench/grad_scale.py [--probes 24] [--models smollm2-135m-instruct,gemma3-270m]
"""

from __future__ import annotations

import argparse
import json
import random
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
    per_round = cfg.federation.clients_per_round * cfg.strategy.local_steps
    return {"model": model, "probes": probes, "median_abs_g": statistics.median(gs),
            "p90_abs_g": gs[int(0.9 * (len(gs) - 1))], "p99_abs_g": gs[int(0.99 * (len(gs) - 1))],
            "max_abs_g": gs[-1], "mean_loss": statistics.mean(losses),
            "clipped": {k: clipped_share(gs, per_round, k) for k in CLIP_FACTORS}}


CLIP_FACTORS = (3.0, 5.0, 10.0)


def clipped_share(gs: list[float], per_round: int, factor: float, rounds: int = 20000) -> float:
    """The share of scalars beyond factor x their round's median |g|, rounds drawn from the probes."""
    rng, over = random.Random(0), 0
    for _ in range(rounds):
        draw = rng.choices(gs, k=per_round)
        bound = factor * statistics.median(draw)
        over += sum(g > bound for g in draw)
    return over / (rounds * per_round)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", type=int, default=24)
    ap.add_argument("--models", default="smollm2-135m-instruct,gemma3-270m")
    args = ap.parse_args()
    rows = [scale(m, args.probes) for m in args.models.split(",")]
    clips = "".join(f" {'>' + format(k, 'g') + 'x med':>9}" for k in CLIP_FACTORS)
    print(f"{'model':24} {'median |g|':>11} {'p90 |g|':>9} {'p99 |g|':>9} {'max |g|':>9} {'loss':>7} "
          f"{clips}")
    for r in rows:
        shares = "".join(f" {r['clipped'][k]:>9.2%}" for k in CLIP_FACTORS)
        print(f"{r['model']:24} {r['median_abs_g']:>11.4g} {r['p90_abs_g']:>9.4g} {r['p99_abs_g']:>9.4g} "
              f"{r['max_abs_g']:>9.4g} {r['mean_loss']:>7.4f}{shares}")
    if len(rows) > 1:
        print(f"median |g| ratio {rows[1]['model']} / {rows[0]['model']}: "
              f"{rows[1]['median_abs_g'] / rows[0]['median_abs_g']:.3g}x")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
