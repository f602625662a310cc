"""curves.png: the eval metric against round and against cumulative bytes exchanged."""

from __future__ import annotations

import pathlib


def plot_curves(rows: list[dict], path: pathlib.Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = next(k for k in ("eval_accuracy", "eval_rougeL", "eval_loss") if any(k in r for r in rows))
    cum, total = [], 0
    for r in rows:
        total += r["bytes_up"] + r["bytes_down"]
        cum.append(total)
    pts = [(r["round"], c, r[key]) for r, c in zip(rows, cum) if key in r]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot([p[0] for p in pts], [p[2] for p in pts], marker="o")
    axes[0].set_xlabel("round")
    axes[1].plot([p[1] for p in pts], [p[2] for p in pts], marker="o")
    axes[1].set_xlabel("cumulative bytes (up + down, all clients)")
    for ax in axes:
        ax.set_ylabel(key.replace("_", " "))
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
