"""docs/results.md from finished runs: per data setting, one row per run (final metric, bytes per client per
round, total bytes and their ratios to FedAvg and FedIT, training forwards and backwards, wall time, peak memory)
and plots of the metric against round, cumulative bytes and wall time, one line per run."""

from __future__ import annotations

import pathlib
from collections import defaultdict

from fedseed.report import load_run, metric_key

METHOD_NAMES = {"fedkseed": "FedKSeed", "fedkseed-pro": "FedKSeed-Pro", "ferret": "Ferret",
                "onebyte": "one-byte SPSA", "fedavg": "FedAvg (first order)", "fedit": "FedIT (LoRA, first order)",
                "mezo": "MeZO (centralized)", "fzoo": "FZOO"}
ORDER = list(METHOD_NAMES)
METRIC_NAMES = {"eval_accuracy": "accuracy (%)", "eval_rougeL": "Rouge-L (%)", "eval_loss": "eval loss"}


def method_label(summary: dict) -> str:
    """The method's name, with its privacy mode and epsilon for a private run."""
    name = METHOD_NAMES.get(summary["strategy"], summary["strategy"])
    if summary.get("adapter") and summary["strategy"] != "fedit":
        name += f" on LoRA ({summary['adapter'].removeprefix('lora ')})"
    private = summary.get("privacy") or {}
    if not private:
        return name
    eps = summary.get("epsilon")
    return f"{name} ({private.get('mode', 'private')}{'' if eps is None else f', ε = {eps:.2f}'})"


def fmt_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,.0f} B"


def scaled(key: str, value: float) -> float:
    return 100.0 * value if key != "eval_loss" else value


def ratio_to(base: dict | None, s: dict) -> str:
    return f"{base['bytes_total'] / s['bytes_total']:,.0f}×" if base and s["bytes_total"] else "–"


def passes_text(s: dict) -> str:
    if s.get("forwards") is None:
        return "–"
    return f"{s['forwards']:,} / {s['backwards']:,}"


def cumulative_minutes(rows: list[dict]) -> list[float]:
    total, out = 0.0, []
    for r in rows:
        total += (r.get("setup_s") or 0.0) + r["wall_s"] + (r.get("eval_s") or 0.0)
        out.append(total / 60)
    return out


def cumulative_bytes(rows: list[dict]) -> list[int]:
    total, out = 0, []
    for r in rows:
        total += r["bytes_up"] + r["bytes_down"]
        out.append(total)
    return out


def setting_table(runs: list[tuple[str, dict, list[dict]]]) -> list[str]:
    key = metric_key(runs[0][1])
    fedavg = next((s for _, s, _ in runs if s["strategy"] == "fedavg"), None)
    fedit = next((s for _, s, _ in runs if s["strategy"] == "fedit"), None)
    head = (f"| method | clients (per round) | rounds | zero-shot {METRIC_NAMES[key]} | final {METRIC_NAMES[key]} "
            "| gain | bytes / client / round (up + down) | total bytes | FedAvg total bytes / this "
            "| FedIT total bytes / this | training forwards / backwards | wall time | peak RSS |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for _, s, _ in runs:
        zero, final = scaled(key, s["zero_shot"][key]), scaled(key, s["final"][key])
        per = s["bytes_up_per_client_round"] + s["bytes_down_per_client_round"]
        ratio, to_fedit = ratio_to(fedavg, s), ratio_to(fedit, s)
        per_text, total_text = fmt_bytes(per), fmt_bytes(s["bytes_total"])
        if not s["bytes_total"]:  # one party trained alone: nothing travelled
            per_text, total_text, ratio, to_fedit = "– (no communication)", "–", "–", "–"
        rss = max([s.get("peak_rss_mib") or 0.0, *s.get("workers_peak_rss_mib", [])])
        lines.append(f"| {method_label(s)} | {s['num_clients']} "
                     f"({s['clients_per_round']}) | {s['rounds']} | {zero:.2f} | **{final:.2f}** | {final - zero:+.2f} "
                     f"| {per_text} | {total_text} | {ratio} | {to_fedit} | {passes_text(s)} "
                     f"| {s['wall_s'] / 60:.1f} min | {rss:,.0f} MiB |")
    return lines


def plot_setting(runs: list[tuple[str, dict, list[dict]]], path: pathlib.Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = metric_key(runs[0][1])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for _, s, rows in runs:
        cum, minutes = cumulative_bytes(rows), cumulative_minutes(rows)
        pts = [(r["round"], max(c, 1), scaled(key, r[key]), m) for r, c, m in zip(rows, cum, minutes) if key in r]
        label = method_label(s)
        axes[0].plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=label)
        if s["bytes_total"]:  # a run that sent nothing has no bytes axis
            axes[1].plot([p[1] for p in pts], [p[2] for p in pts], marker="o", label=label)
        axes[2].plot([p[3] for p in pts], [p[2] for p in pts], marker="o", label=label)
    axes[0].set_xlabel("round")
    axes[1].set_xlabel("cumulative bytes, all clients, up + down (log)")
    axes[1].set_xscale("log")
    axes[2].set_xlabel("wall time on 2 CPU cores (minutes)")
    for ax in axes:
        ax.set_ylabel(METRIC_NAMES[key])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_results(runs: list[str], out: str, context: str | None = None) -> pathlib.Path:
    """Write the markdown table(s) and one PNG per data setting next to `out`; returns the markdown path."""
    target = pathlib.Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[tuple[str, dict, list[dict]]]] = defaultdict(list)
    for run in runs:
        summary, rows = load_run(run)
        groups[f"{summary['data']} on {summary['model']}"].append((run, summary, rows))
    lines = ["# Results", "", "Generated by `fedseed report` from the runs listed under each table; every number is "
             "read from a run's summary.json and metrics.jsonl.", ""]
    for name, members in groups.items():
        members.sort(key=lambda m: (ORDER.index(m[1]["strategy"]) if m[1]["strategy"] in ORDER else 99, m[0]))
        png = target.with_name(f"{target.stem}-{name.split(' ')[0]}.png")
        plot_setting(members, png, name)
        lines += [f"## {name}", "", *setting_table(members), "",
                  "Runs: " + ", ".join(f"`{m[0]}`" for m in members) + ". A run folder named after a recipe in "
                  "`simulations/experiments/` is rerun by `fedseed experiments --only <its name>`.", "",
                  f"![{name}]({png.name})", ""]
    if context:
        lines += [pathlib.Path(context).read_text(encoding="utf-8").rstrip(), ""]
    target.write_text("\n".join(lines), encoding="utf-8")
    return target
