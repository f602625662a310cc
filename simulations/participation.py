"""Who of a round's sampled clients reports, and after how many local steps: the simulation's heterogeneity knobs.

Every draw comes from (run seed, round, client) alone, so it is the same on every backend and does not depend
on which other clients were sampled. A straggler is slow for the whole run; a dropout is decided per round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedseed.config import FederationSection
from fedseed.seeds import derive

DROPOUT_TAG, STEPS_TAG, STRAGGLER_TAG = 0xD509, 0x57E9, 0x57A6


@dataclass
class Participation:
    steps: dict[int, int]  # clients that report, with their local steps
    dropped: list[int]  # sampled but never reported
    late: list[int]  # reported after the round's deadline: their work is discarded

    @property
    def reporting(self) -> list[int]:
        return sorted(self.steps)


def _uniform(*parts: int) -> float:
    return (derive(*parts) >> 11) / float(1 << 53)


def is_straggler(fed: FederationSection, run_seed: int, client: int) -> bool:
    return _uniform(run_seed, STRAGGLER_TAG, client) < fed.straggler_fraction


def participation(fed: FederationSection, run_seed: int, round_idx: int, clients: list[int],
                  default_steps: int) -> Participation:
    steps, dropped, late = {}, [], []
    for c in clients:
        if fed.dropout and _uniform(run_seed, DROPOUT_TAG, round_idx, c) < fed.dropout:
            dropped.append(c)
            continue
        n = default_steps
        if fed.local_steps_min:
            rng = np.random.default_rng(derive(run_seed, STEPS_TAG, round_idx, c))
            n = int(rng.integers(fed.local_steps_min, default_steps + 1))
        duration = n * (fed.straggler_slowdown if is_straggler(fed, run_seed, c) else 1.0)
        if fed.deadline_steps and duration > fed.deadline_steps:
            late.append(c)
            continue
        steps[c] = n
    return Participation(steps, dropped, late)
