"""Vectors of the shared randomness (docs/spec/randomness.md): seed keys, the word hash, directions, the
Gaussian table, derived seeds and indices, pools and the coordinator's client draw."""

from __future__ import annotations

import hashlib

import numpy as np

from fedseed import rng_spec, seeds

SEEDS = [0, 1, 42, 123456789, 2**63 - 1]
WORDS = [0, 1, 31, 2**32 - 1, 2**32, 2**32 + 5, 2**40 + 3]
INDICES = [0, 1, 2, 31, 32, 33, 63, 64, 1000, 2**32 + 5, 2**37 + 1]


def gaussian_table() -> dict:
    """The table as runs of equal values in ascending u, and the SHA-256 of its int32 little-endian bytes."""
    table = rng_spec.gauss_table()
    edges = np.flatnonzero(np.diff(table)) + 1
    starts = np.concatenate([[0], edges])
    counts = np.diff(np.concatenate([starts, [len(table)]]))
    runs = [[int(table[s]), int(c)] for s, c in zip(starts, counts)]
    return {"entries": len(table), "runs": runs, "sha256": rng_spec.gauss_table_digest(),
            "second_moment_times_65536": str(int(np.sum(table.astype(np.int64) ** 2)))}


def vectors() -> dict:
    cum = np.cumsum(np.asarray([3, 0, 5, 1, 7], np.int64))
    return {
        "splitmix64": [{"x": str(x), "out": str(rng_spec.splitmix64(x))}
                       for x in [0, 1, 42, 2**63 - 1, 2**64 - 1]],
        "mix32": [{"x": x, "out": rng_spec.mix32(x)} for x in [0, 1, 0xDEADBEEF, 0xFFFFFFFF]],
        "seed_keys": [{"seed": str(s), "key_a": a, "key_b": b} for s in SEEDS for a, b in [rng_spec.seed_keys(s)]],
        "word_hash": [{"seed": str(s), "word": str(j), "out": rng_spec.word_hash(s, j)} for s in SEEDS[:3]
                      for j in WORDS],
        "directions": [{"seed": str(s), "indices": [str(i) for i in INDICES],
                        "rademacher": rng_spec.reference_z_int(s, INDICES, "rademacher"),
                        "gaussian": rng_spec.reference_z_int(s, INDICES, "gaussian")} for s in SEEDS],
        "directions_block": {"seed": "7", "first_index": 0, "count": 128,
                             "rademacher_sha256": _digest(rng_spec.reference_z_int(7, list(range(128)), "rademacher")),
                             "gaussian_sha256": _digest(rng_spec.reference_z_int(7, list(range(128)), "gaussian"))},
        "gaussian_table": gaussian_table(),
        "derive": [{"parts": [str(p) for p in parts], "out": str(seeds.derive(*parts)),
                    "derive_seed": str(seeds.derive_seed(*parts))}
                   for parts in [(), (0,), (1, 2, 3), (2**64 - 1, 0x9001, 7), (5, 0xFE77E7, 1, 2, 0, 3)]],
        "seed_pool": {"master_seed": "42", "k": 8, "seeds": [str(s) for s in seeds.seed_pool(42, 8).tolist()]},
        "uniform_index": [{"k": k, "parts": [str(p) for p in parts], "out": seeds.uniform_index(k, *parts)}
                          for k, parts in [(4096, (42, 1, 0, 0)), (4096, (42, 1, 0, 1)), (7, (9, 3, 2, 5))]],
        "weighted_index": {"weights": [3, 0, 5, 1, 7], "cumulative": cum.tolist(),
                           "draws": [{"parts": [str(p) for p in parts], "u": seeds.derive(*parts) % int(cum[-1]),
                                      "out": seeds.weighted_index(cum, *parts)}
                                     for parts in [(42, 1, 0, t) for t in range(6)]]},
        "sample_clients": [{"run_seed": 42, "round": r, "attempt": a, "candidates": list(range(10)), "k": 3,
                            "out": seeds.sample_clients(42, r, a, list(range(10)), 3)}
                           for r, a in [(1, 0), (2, 0), (1, 1)]],
    }


def _digest(values: list[int]) -> str:
    """SHA-256 of the direction integers as int16 little-endian (|z_int| <= 1107)."""
    return hashlib.sha256(np.asarray(values, "<i2").tobytes()).hexdigest()
