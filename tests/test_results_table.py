"""`fedseed report RUN… --out results.md`: one row per method with its metric, bytes and ratio to FedAvg, plots;
and `fedseed experiments` runs recipes once, resuming or skipping what exists."""

import json
import os
import pathlib
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

from fedseed.cli import main
from fedseed.config import load_config
from fedseed.report import load_run, metric_key

SMOKE = "simulations/smoke.toml"
TINY = ["--set", "run.rounds=2", "--set", "eval.every=2", "--set", "data.eval_size=32", "--set", "model.backend=eager"]


def plain_smoke(tmp_path) -> str:
    """The smoke config without the keys only FedKSeed knows, so any strategy can take it."""
    text = open(SMOKE).read().replace("num_seeds = 256\n", "")
    path = tmp_path / "plain.toml"
    path.write_text(text)
    return str(path)


def test_report_table_has_every_method_and_the_fedavg_ratio(tmp_path, capsys):
    base = plain_smoke(tmp_path)
    runs = {}
    for name, extra in {"fedkseed": [], "fedavg": ["--set", "strategy.name=fedavg", "--set", "strategy.lr=0.05"],
                        "fedit": ["--set", "strategy.name=fedit", "--set", "strategy.lr=0.05",
                                  "--set", 'adapter.kind="lora"'],
                        "mezo": ["--set", "strategy.name=mezo", "--set", "federation.num_clients=1",
                                 "--set", "federation.clients_per_round=1", "--set", "data.partition=iid"]}.items():
        runs[name] = str(tmp_path / name)
        assert main(["simulate", base, "--quiet", "--out", runs[name], *TINY, *extra]) == 0
    capsys.readouterr()
    out = tmp_path / "docs" / "results.md"
    context = tmp_path / "papers.md"
    context.write_text("## The papers' numbers\n\nquoted here\n")
    assert main(["report", *runs.values(), "--out", str(out), "--context", str(context)]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "method" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["FedKSeed", "FedAvg (first order)",
                                                       "FedIT (LoRA, first order)", "MeZO (centralized)"]
    summaries = {n: json.loads((tmp_path / n / "summary.json").read_text()) for n in runs}
    ratio = summaries["fedavg"]["bytes_total"] / summaries["fedkseed"]["bytes_total"]
    to_fedit = summaries["fedit"]["bytes_total"] / summaries["fedkseed"]["bytes_total"]
    assert f"| {ratio:,.0f}× | {to_fedit:,.0f}× |" in rows[0] and "| 1× |" in rows[1] and "| 1× |" in rows[2]
    fedavg_to_fedit = summaries["fedavg"]["bytes_total"] / summaries["fedit"]["bytes_total"]
    assert f"| 1× | 1/{fedavg_to_fedit:,.0f}× |" in rows[1]  # FedAvg sends more than FedIT: not "0×"
    # 2 rounds of 3 clients: 4 two-point steps (8 forwards) each for FedKSeed, 4 SGD steps each for FedAvg
    assert "| 48 / 0 |" in rows[0] and "| 24 / 24 |" in rows[1]
    assert summaries["fedit"]["adapter"] == "lora rank 8" and "adapter" not in summaries["fedkseed"]
    final = 100 * summaries["fedkseed"]["final"]["eval_accuracy"]
    assert re.search(rf"\*\*{final:.2f}\*\*", rows[0])
    assert "| – (no communication) | – | – | – |" in rows[3]  # centralized MeZO exchanges nothing
    assert (out.parent / "results-reviews-mini.png").stat().st_size > 10_000
    assert text.rstrip().endswith("quoted here")
    assert main(["report", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_experiments_run_each_recipe_once(tmp_path, capsys):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    shutil.copy(SMOKE, recipes / "_base.toml")
    (recipes / "tiny_a.toml").write_text('# A tiny run. Seconds.\nextends = "_base.toml"\n[run]\nrounds = 1\n')
    (recipes / "tiny_b.toml").write_text('extends = "_base.toml"\n[run]\nrounds = 1\nseed = 1\n')
    assert main(["experiments", "--dir", str(recipes), "--list"]) == 0
    assert capsys.readouterr().out.splitlines() == ["tiny_a: A tiny run. Seconds.", "tiny_b: "]
    args = ["experiments", "--dir", str(recipes), "--out", str(tmp_path / "runs"), "--quiet"]
    assert main([*args, "--only", "tiny_a"]) == 0
    assert (tmp_path / "runs" / "tiny_a" / "summary.json").is_file()
    assert not (tmp_path / "runs" / "tiny_b").exists()
    capsys.readouterr()
    kept = tmp_path / "kept"
    assert main([*args, "--report", str(tmp_path / "results.md"), "--keep", str(kept)]) == 0
    err = capsys.readouterr().err
    assert "tiny_a: finished earlier, kept" in err and "tiny_b: starting" in err
    for name in ("tiny_a", "tiny_b"):  # the record files are copied, the round log stays with the run
        assert sorted(p.name for p in (kept / name).iterdir()) == ["metrics.jsonl", "summary.json"]
        assert (kept / name / "summary.json").read_bytes() == (tmp_path / "runs" / name / "summary.json").read_bytes()
    # the two recipes differ only in their seed: one row, the mean ± sample std of their final accuracies
    finals = [100 * json.loads((kept / n / "summary.json").read_text())["final"]["eval_accuracy"]
              for n in ("tiny_a", "tiny_b")]
    rows = [r for r in (tmp_path / "results.md").read_text().splitlines() if r.startswith("| FedKSeed |")]
    assert len(rows) == 1 and "| 0, 1 |" in rows[0]
    assert f"**{statistics.fmean(finals):.2f}** ± {statistics.stdev(finals):.2f}" in rows[0]
    assert main([*args, "--only", "nothing*"]) == 2
    (recipes / "tiny_c.toml").write_text('extends = "_base.toml"\n[strategy]\nlr = "fast"\n')
    assert main(args) == 2  # a bad recipe stops the command before anything runs
    assert "strategy.lr" in capsys.readouterr().err


def processes_running(marker: str) -> list[int]:
    """Pids of the live processes whose command line names `marker` (read from /proc: Linux)."""
    pids = []
    for proc in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            if marker in proc.joinpath("cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:  # it ended while being read
            continue
    return pids


def test_stopping_the_command_stops_the_run_it_started(tmp_path):
    """A SIGTERM to `fedseed experiments` reaches the recipe's own simulate process: none is left computing."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    shutil.copy(SMOKE, recipes / "_base.toml")
    (recipes / "endless.toml").write_text('extends = "_base.toml"\n[run]\nrounds = 100000\n')
    out = tmp_path / "runs"
    parent = subprocess.Popen([sys.executable, "-m", "fedseed.cli", "experiments", "--dir", str(recipes),
                               "--out", str(out), "--quiet"], stderr=subprocess.PIPE, text=True)
    marker = str(out / "endless")
    try:
        deadline = time.monotonic() + 120
        while not (out / "endless" / "log.sqlite").exists():  # the run has started computing
            assert parent.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        assert len([pid for pid in processes_running(marker) if pid != parent.pid]) == 1
        parent.send_signal(signal.SIGTERM)
        _, err = parent.communicate(timeout=60)
        assert parent.returncode == 1 and "recipe endless stopped with exit status -15" in err
        assert processes_running(marker) == []  # the command waited for its run to end before it exited
    finally:  # a failure leaves nothing computing either
        for pid in processes_running(marker):
            os.kill(pid, signal.SIGKILL)


def test_kept_records_are_finished_runs_of_the_listed_recipes():
    """Every run docs/results.md cites is kept under docs/runs/ and is what its recipe's one command reproduces."""
    cited = re.findall(r"`(docs/runs/[^`]+)`", pathlib.Path("docs/results.md").read_text())
    kept = sorted(p for p in pathlib.Path("docs/runs").glob("*") if p.is_dir())
    assert len(cited) == len(set(cited)) and set(cited) <= {str(p) for p in kept}
    for folder in kept:
        summary, rows = load_run(str(folder))
        cfg = load_config(f"simulations/experiments/{folder.name}.toml")
        assert (summary["strategy"], summary["rounds"], summary["seed"], summary["num_clients"]) == (
            cfg.strategy.name, cfg.run.rounds, cfg.run.seed, cfg.federation.num_clients), folder
        assert [r["round"] for r in rows] == list(range(cfg.run.rounds + 1)), folder


def test_runs_of_one_method_at_two_budgets_are_told_apart_by_their_forwards():
    from fedseed.results_table import group_labels, seed_groups

    def run(name: str, seed: int, forwards: int) -> tuple[str, dict, list]:
        return (name, {"strategy": "fedkseed", "seed": seed, "rounds": 20, "num_clients": 20, "clients_per_round": 4,
                       "forwards": forwards, "backwards": 0, "bytes_total": 9000 + seed}, [])

    runs = [run("short", 0, 480), run("long", 0, 4000), run("long_seed1", 1, 4000), run("again", 0, 4000)]
    groups = seed_groups(runs)
    assert [[m[0] for m in g] for g in groups] == [["short"], ["long", "long_seed1"], ["again"]]
    assert group_labels(groups) == ["FedKSeed, 480 forwards", "FedKSeed (long)", "FedKSeed (again)"]


# final metrics docs/simulation.md ("What the runs show") quotes, by the record they are read from
QUOTED_FINALS = {"sentiment_fedkseed": "72.0%", "sentiment_fedkseed_pro": "74.0%", "sentiment_onebyte": "70.3%",
                 "sentiment_fzoo": "72.0%", "sentiment_mezo": "73.0%", "sentiment_fedavg": "84.3%",
                 "sentiment_fedit": "84.0%", "sentiment_ferret": "77.7%", "sentiment_fedkseed_lora": "54.3%",
                 "sentiment_fedkseed_long": "74.7%", "tasks_fedkseed": "20.3", "tasks_fedavg": "32.3",
                 "tasks_fedit": "33.6", "tasks_fedkseed_long": "25.7%",
                 "sentiment_fedkseed_long_seed1": "80.0%", "sentiment_onebyte_long": "74.0%"}


def test_the_figures_the_docs_quote_are_the_kept_records():
    section = pathlib.Path("docs/simulation.md").read_text().split("## What the runs show")[1]
    for name, quoted in QUOTED_FINALS.items():
        summary = load_run(f"docs/runs/{name}")[0]
        value = 100 * summary["final"][metric_key(summary)]
        assert f"{value:.1f}" == quoted.rstrip("%"), (name, value, quoted)
        assert quoted in section, (name, quoted)
