"""Admitted clients that attack, for testing a federation's bounds (``fedseed.robust``): a client runs the honest
local work, then sends what an attacker would instead. In a simulation the strategy's local work is corrupted for
the chosen clients; an edge client corrupts its own strategy's the same way (the attack tests do both)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from fedseed.codecs import decode, encode
from fedseed.directions import MAX_ABS_COEF
from fedseed.strategies.base import ClientResult, LocalContext, RoundPlan, Strategy

MODES = ("inflate", "flip", "at_clip")
INFLATED = 1 << 40  # the largest num_samples a coordinator accepts


def corrupt(result: ClientResult, mode: str, strategy: Strategy, lr: float, reach: float = MAX_ABS_COEF
            ) -> ClientResult:
    """inflate: weight 2^40 and every scalar at the largest magnitude the state's bound lets through (a step of
    `reach`: the coefficient bound, or less where the state holds less, as the compact state's int32 does), against
    its honest sign; flip: the honest scalars negated, with the inflated weight; at_clip: every scalar at the
    largest magnitude the run's bounds let through (robust.clip, else its share of the norm bound, estimated
    from the attacker's own honest norm) against its sign."""
    codec = strategy.cfg.codec
    g = decode(result.payload, codec).astype(np.float64)
    sign = np.where(g >= 0, 1.0, -1.0)
    robust = strategy.run.robust
    if mode == "inflate":
        bad, n = -sign * 0.99 * reach / lr, INFLATED
    elif mode == "flip":
        bad, n = -g, INFLATED
    elif mode == "at_clip":  # as large as the bounds let through, as far as the attacker can tell
        if robust.clip:
            bound = robust.clip
        else:  # its own vector stretched to the norm bound, spread evenly over its scalars
            bound = max(robust.norm_factor, 1.5) * float(np.linalg.norm(g)) / np.sqrt(max(1, g.size))
        bad, n = -sign * bound, result.num_samples
    else:
        raise ValueError(f"unknown attack {mode!r}; one of {MODES}")
    return dataclasses.replace(result, payload=encode(bad, codec), num_samples=n)


def first_of_round(plan: RoundPlan, client: int) -> bool:
    """One attacker in every round: the round's lowest-index client (a simulation's plan lists them all)."""
    return client == min(plan.clients)


def make_malicious(strategy: Strategy, mode: str,
                   clients: set[int] | Callable[[RoundPlan, int], bool]) -> Strategy:
    """The same strategy object, whose local work for `clients` (a set, or a test of (plan, client)) is
    corrupted by `mode`."""
    if mode not in MODES:
        raise ValueError(f"unknown attack {mode!r}; one of {MODES}")
    honest = strategy.local_work
    is_malicious = clients if callable(clients) else (lambda _plan, c: c in clients)

    def local_work(ctx: LocalContext, plan: RoundPlan, client: int) -> ClientResult:
        result = honest(ctx, plan, client)
        return corrupt(result, mode, strategy, plan.lr) if is_malicious(plan, client) else result

    strategy.local_work = local_work  # type: ignore[method-assign]
    return strategy
