"""Seeds and indices derived from identities: a pool from a master seed, and per-step draws from
(run, round, client, step) -- so parties never send seed indices, only scalars."""

from __future__ import annotations

import numpy as np

from fedseed.rng_spec import M64, MAX_SEED, splitmix64


def derive(*parts: int) -> int:
    """A 64-bit hash of a tuple of non-negative integers (splitmix64 chained)."""
    h = 0x6A09E667F3BCC908
    for p in parts:
        h = splitmix64((h ^ (int(p) & M64)) & M64)
    return h


def derive_seed(*parts: int) -> int:
    return derive(*parts) & MAX_SEED


def seed_pool(master_seed: int, k: int) -> np.ndarray:
    """K direction seeds from one master seed (FedKSeed's candidate pool)."""
    return np.asarray([derive_seed(master_seed, 0x9001, j) for j in range(k)], dtype=np.int64)


def uniform_index(k: int, *parts: int) -> int:
    return derive(*parts) % k


def weighted_index(cum_weights: np.ndarray, *parts: int) -> int:
    """Draw j with probability w_j / sum(w) from integer cumulative weights: exact on every party."""
    total = int(cum_weights[-1])
    u = derive(*parts) % total
    return int(np.searchsorted(cum_weights, u, side="right"))


def sample_clients(run_seed: int, round_idx: int, attempt: int, candidates: list[int], k: int) -> list[int]:
    """A round's k clients among the sorted candidates. The one-process simulation draws from every client with
    attempt 0; a coordinator draws from the clients online, so with everyone online both pick the same."""
    if len(candidates) <= k:
        return list(candidates)
    key = derive(run_seed, 0x5A3E, round_idx) if attempt == 0 else derive(run_seed, 0x5A3E, round_idx, attempt)
    picked = np.random.default_rng(key).choice(len(candidates), k, replace=False)
    return sorted(candidates[i] for i in picked.tolist())
