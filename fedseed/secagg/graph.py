"""The public neighbour graph of a round: who agrees masks with whom and holds whose shares. With
``neighbours = 0`` (or a roster no larger than it) every client neighbours every other (Bonawitz et al.);
otherwise each client is joined to ``neighbours`` others (rounded up to an even number) on a ring in an order
every party derives from the run's seed and the round (SecAgg+'s sparse graph), so each client's cost grows
with k, not with the roster."""

from __future__ import annotations

import hashlib
import struct


def ring_order(roster: list[int], run_seed: int, round_idx: int, attempt: int) -> list[int]:
    def rank(c: int) -> bytes:
        return hashlib.sha256(b"fedseed-secagg-ring" + struct.pack("<QIII", run_seed, round_idx, attempt, c)).digest()
    return sorted(roster, key=rank)


def neighbours(roster: list[int], k: int, run_seed: int, round_idx: int, attempt: int) -> dict[int, list[int]]:
    """client -> its neighbours (sorted, never itself); symmetric."""
    roster = sorted(set(roster))
    if k <= 0 or k >= len(roster) - 1:
        return {c: [d for d in roster if d != c] for c in roster}
    order = ring_order(roster, run_seed, round_idx, attempt)
    n, half = len(order), (k + 1) // 2
    out: dict[int, set[int]] = {c: set() for c in roster}
    for pos, c in enumerate(order):
        for step in range(1, half + 1):
            d = order[(pos + step) % n]
            out[c].add(d)
            out[d].add(c)
    return {c: sorted(v - {c}) for c, v in out.items()}


def majority(holders: int) -> int:
    """Shares needed to rebuild a secret held by `holders` parties: a majority of them."""
    return holders // 2 + 1


def connected(nodes: set[int], graph: dict[int, list[int]]) -> bool:
    """Whether `nodes` are connected by the graph's edges among themselves: if they fall apart, the pairwise
    masks of each part cancel within it, and that part's sum could be unmasked alone."""
    nodes = set(nodes)
    if not nodes:
        return True
    start = min(nodes)
    seen, todo = {start}, [start]
    while todo:
        for d in graph.get(todo.pop(), []):
            if d in nodes and d not in seen:
                seen.add(d)
                todo.append(d)
    return seen == nodes
