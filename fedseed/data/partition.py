"""Splitting a dataset into a held-out set and per-client shards: IID, Dirichlet over labels, one task each."""

from __future__ import annotations

import numpy as np

from fedseed.data.examples import Dataset

SCHEMES = ("iid", "dirichlet", "task")


def holdout_split(n: int, n_eval: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if n_eval >= n:
        raise ValueError(f"an eval set of {n_eval} (data.eval_size) leaves no training data out of {n} examples")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_eval:]), np.sort(perm[:n_eval])


def partition(ds: Dataset, indices: np.ndarray, num_clients: int, scheme: str, alpha: float, seed: int,
              min_size: int = 2) -> list[np.ndarray]:
    """Client shards (arrays of example indices into ds), deterministic in seed."""
    rng = np.random.default_rng(seed)
    if scheme == "iid":
        return [np.sort(s) for s in np.array_split(rng.permutation(indices), num_clients)]
    if scheme == "task":
        tasks = sorted({ds.examples[i].task for i in indices})
        if len(tasks) < num_clients:
            raise ValueError(f"partition 'task' needs >= {num_clients} tasks, the data has {len(tasks)}")
        by_task = {t: [] for t in tasks}
        for i in indices:
            by_task[ds.examples[i].task].append(i)
        return [np.asarray(by_task[t]) for t in tasks[:num_clients]]
    if scheme == "dirichlet":
        if alpha <= 0:
            raise ValueError(f"dirichlet alpha must be > 0, got {alpha}")
        labels = np.asarray([ds.examples[i].label for i in indices])
        if (labels == None).any():  # noqa: E711 (object array)
            raise ValueError("partition 'dirichlet' needs labelled (classification) data")
        for _ in range(100):  # redraw until every client has min_size examples, as FedKSeed's loader does
            shards: list[list[int]] = [[] for _ in range(num_clients)]
            for c in np.unique(labels):
                members = rng.permutation(indices[labels == c])
                props = rng.dirichlet([alpha] * num_clients)
                cuts = (np.cumsum(props)[:-1] * len(members)).astype(int)
                for k, part in enumerate(np.split(members, cuts)):
                    shards[k].extend(part.tolist())
            if min(len(s) for s in shards) >= min_size:
                return [np.sort(np.asarray(s)) for s in shards]
        raise ValueError(f"dirichlet(alpha={alpha}) could not give each of {num_clients} clients {min_size} examples")
    raise ValueError(f"unknown partition {scheme!r}; expected one of {', '.join(SCHEMES)}")
