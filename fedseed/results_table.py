"""docs/results.md from finished runs: per data setting, one row per run (final metric, bytes per client per
round, total bytes and their ratios to FedAvg and FedIT, training forwards and backwards, wall time, peak memory)
and plots of the metric against round, cumulative bytes and wall time, one line per run. Runs that differ only in
their seed share one row (mean ± sample std of the metric, the seeds listed) and one line (the mean curve)."""

from __future__ import annotations

import pathlib
import statistics
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
    if not (base and s["bytes_total"]):
        return "–"
    r = base["bytes_total"] / s["bytes_total"]
    return f"{r:,.0f}×" if r >= 1 else f"1/{1 / r:,.0f}×"  # a run sending more than the base: FedAvg against FedIT


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


Run = tuple[str, dict, list[dict]]


def budget_key(s: dict) -> tuple:
    """What a run spent and how: runs alike in all of it but the seed are repeats of one experiment."""
    return (method_label(s), s["rounds"], s["num_clients"], s["clients_per_round"], s.get("forwards"),
            s.get("backwards"), s["bytes_total"] > 0)


def seed_groups(runs: list[Run]) -> list[list[Run]]:
    """The runs of a setting grouped into repeats (same budget key, distinct seeds), in the order given."""
    groups: list[list[Run]] = []
    for run in runs:
        home = next((g for g in groups if budget_key(g[0][1]) == budget_key(run[1])
                     and run[1]["seed"] not in {m[1]["seed"] for m in g}), None)
        if home is None:
            groups.append([run])
        else:
            home.append(run)
    return groups


def group_labels(groups: list[list[Run]]) -> list[str]:
    """Each group's method label; where a label repeats in a setting, its forwards (or run folder) tell them apart."""
    labels = [method_label(g[0][1]) for g in groups]
    out = []
    for label, g in zip(labels, groups):
        if labels.count(label) > 1:
            s = g[0][1]
            forwards = [h[0][1].get("forwards") for h, other in zip(groups, labels) if other == label]
            unique = s.get("forwards") is not None and forwards.count(s["forwards"]) == 1
            label += f", {s['forwards']:,} forwards" if unique else f" ({g[0][0]})"
        out.append(label)
    return out


def metric_text(key: str, group: list[Run]) -> tuple[str, float]:
    """The final metric of a group in bold (mean ± sample std over its seeds) and its mean gain over zero-shot."""
    finals = [scaled(key, s["final"][key]) for _, s, _ in group]
    gains = [f - scaled(key, s["zero_shot"][key]) for f, (_, s, _) in zip(finals, group)]
    if len(group) == 1:
        return f"**{finals[0]:.2f}**", gains[0]
    return f"**{statistics.fmean(finals):.2f}** ± {statistics.stdev(finals):.2f}", statistics.fmean(gains)


def setting_table(runs: list[Run]) -> list[str]:
    key = metric_key(runs[0][1])
    fedavg = next((s for _, s, _ in runs if s["strategy"] == "fedavg"), None)
    fedit = next((s for _, s, _ in runs if s["strategy"] == "fedit"), None)
    head = (f"| method | seeds | clients (per round) | rounds | zero-shot {METRIC_NAMES[key]} "
            f"| final {METRIC_NAMES[key]} | gain | bytes / client / round (up + down) | total bytes "
            "| FedAvg total bytes / this | FedIT total bytes / this | training forwards / backwards | wall time "
            "| peak RSS |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    groups = seed_groups(runs)
    for label, group in zip(group_labels(groups), groups):
        s = group[0][1]
        zero = statistics.fmean(scaled(key, m[1]["zero_shot"][key]) for m in group)
        final, gain = metric_text(key, group)
        seeds = ", ".join(str(m[1]["seed"]) for m in group)
        wall = statistics.fmean(m[1]["wall_s"] for m in group)
        # bytes differ a little between seeds (which clients a round samples): their means
        per = statistics.fmean(m["bytes_up_per_client_round"] + m["bytes_down_per_client_round"] for _, m, _ in group)
        s = {**s, "bytes_total": statistics.fmean(m["bytes_total"] for _, m, _ in group)}
        ratio, to_fedit = ratio_to(fedavg, s), ratio_to(fedit, s)
        per_text, total_text = fmt_bytes(per), fmt_bytes(s["bytes_total"])
        if not s["bytes_total"]:  # one party trained alone: nothing travelled
            per_text, total_text, ratio, to_fedit = "– (no communication)", "–", "–", "–"
        rss = max(max([m.get("peak_rss_mib") or 0.0, *m.get("workers_peak_rss_mib", [])]) for _, m, _ in group)
        lines.append(f"| {label} | {seeds} | {s['num_clients']} ({s['clients_per_round']}) | {s['rounds']} "
                     f"| {zero:.2f} | {final} | {gain:+.2f} | {per_text} | {total_text} | {ratio} | {to_fedit} "
                     f"| {passes_text(s)} | {wall / 60:.1f} min | {rss:,.0f} MiB |")
    return lines


def mean_curve(key: str, group: list[Run]) -> list[tuple[int, int, float, float]]:
    """(round, cumulative bytes, metric, cumulative minutes) at each evaluated round, averaged over the seeds
    (rounds every seed evaluated)."""
    per_run = []
    for _, _, rows in group:
        cum, minutes = cumulative_bytes(rows), cumulative_minutes(rows)
        per_run.append({r["round"]: (max(c, 1), scaled(key, r[key]), m)
                        for r, c, m in zip(rows, cum, minutes) if key in r})
    rounds = sorted(set.intersection(*(set(p) for p in per_run)))
    return [(rnd, round(statistics.fmean(p[rnd][0] for p in per_run)), statistics.fmean(p[rnd][1] for p in per_run),
             statistics.fmean(p[rnd][2] for p in per_run)) for rnd in rounds]


def plot_setting(runs: list[Run], path: pathlib.Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = metric_key(runs[0][1])
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.5))
    groups = seed_groups(runs)
    palette = plt.get_cmap("tab10").colors
    for i, (label, group) in enumerate(zip(group_labels(groups), groups)):
        s, pts = group[0][1], mean_curve(key, group)
        if len(group) > 1:
            label += f" (mean of {len(group)} seeds)"
        # one colour per run on every panel (a run that sent nothing is absent from the bytes panel); past ten
        # runs the colours come back dotted, with square markers
        again = i >= len(palette)
        style = {"marker": "s" if again else "o", "linestyle": ":" if again else "-", "label": label,
                 "color": palette[i % len(palette)]}
        axes[0].plot([p[0] for p in pts], [p[2] for p in pts], **style)
        if s["bytes_total"]:
            axes[1].plot([p[1] for p in pts], [p[2] for p in pts], **style)
        axes[2].plot([p[3] for p in pts], [p[2] for p in pts], **style)
    axes[0].set_xlabel("round")
    axes[1].set_xlabel("cumulative bytes, all clients, up + down (log)")
    axes[1].set_xscale("log")
    axes[2].set_xlabel("wall time on 2 CPU cores (minutes)")
    for ax in axes:
        ax.set_ylabel(METRIC_NAMES[key])
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    columns = min(len(labels), 5)
    fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.045 * -(-len(labels) // columns) + 0.02, 1, 1))  # room for the legend's rows
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_results(runs: list[str], out: str, context: str | None = None) -> pathlib.Path:
    """Write the markdown table(s) and one PNG per data setting next to `out`; returns the markdown path."""
    target = pathlib.Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        summary, rows = load_run(run)
        groups[f"{summary['data']} on {summary['model']}"].append((run, summary, rows))
    lines = ["# Results", "", "Generated by `fedseed report` from the runs listed under each table; every number in "
             "the tables and plots is read from a run's summary.json and metrics.jsonl.", ""]
    for name, members in groups.items():
        members.sort(key=lambda m: (ORDER.index(m[1]["strategy"]) if m[1]["strategy"] in ORDER else 99, m[0]))
        png = target.with_name(f"{target.stem}-{name.split(' ')[0]}.png")
        plot_setting(members, png, name)
        lines += [f"## {name}", "", *setting_table(members), "",
                  "Runs: " + ", ".join(f"`{m[0]}`" for m in members) + ". A run folder named after a recipe in "
                  "`simulations/experiments/` is rerun by `fedseed experiments --only <its name>` (into "
                  "`runs/experiments/<its name>`, where a finished run is kept, not rerun).", "",
                  f"![{name}]({png.name})", ""]
    if context:
        lines += [pathlib.Path(context).read_text(encoding="utf-8").rstrip(), ""]
    target.write_text("\n".join(lines), encoding="utf-8")
    return target
