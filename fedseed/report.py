"""Comparing runs: zero-shot and final metrics per run, their mean and spread, and one plot of all curves."""

from __future__ import annotations

import json
import pathlib
import statistics

from fedseed.records import RecordError, RunSummary, read_rows


def load_run(run: str) -> tuple[dict, list[dict]]:
    """A finished run's summary and round rows, whichever mode wrote them (checked against the record schema)."""
    folder = pathlib.Path(run)
    summary_path, metrics_path = folder / "summary.json", folder / "metrics.jsonl"
    if not summary_path.is_file() or not metrics_path.is_file():
        raise FileNotFoundError(f"{folder} is not a finished run (no summary.json / metrics.jsonl)")
    try:
        summary = RunSummary.from_json(json.loads(summary_path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as e:
        raise RecordError(f"{summary_path}: not JSON ({e})") from None
    except RecordError as e:
        raise RecordError(f"{summary_path}: {e}") from None
    rows = read_rows(metrics_path.read_text(encoding="utf-8"), str(metrics_path))
    return summary.to_json(), [r.to_json() for r in rows]


def metric_key(summary: dict) -> str:
    """The run's headline metric: accuracy (classification), Rouge-L (scored generation), else the eval loss."""
    return next(k for k in ("eval_accuracy", "eval_rougeL", "eval_loss") if k in summary["final"])


def report(runs: list[str]) -> dict:
    """Per-run zero-shot and final metric, and the mean and sample std of both and of their difference."""
    loaded = [load_run(r) for r in runs]
    key = metric_key(loaded[0][0])
    per_run = [{"run": r, "mode": s["mode"], "seed": s["seed"], "zero_shot": s["zero_shot"][key],
                "final": s["final"][key],
                "bytes_per_client_round": s["bytes_up_per_client_round"] + s["bytes_down_per_client_round"],
                "wall_s": s["wall_s"]} for r, (s, _) in zip(runs, loaded)]

    def stats(values: list[float]) -> dict:
        return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}

    return {"metric": key, "runs": per_run, "zero_shot": stats([p["zero_shot"] for p in per_run]),
            "final": stats([p["final"] for p in per_run]),
            "gain": stats([p["final"] - p["zero_shot"] for p in per_run])}


def plot_runs(runs: list[str], path: str, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    key = None
    for run in runs:
        summary, rows = load_run(run)
        key = metric_key(summary)
        pts = [(r["round"], r[key]) for r in rows if key in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"seed {summary['seed']}")
    ax.set_xlabel("round")
    ax.set_ylabel((key or "").replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
