"""Running the experiment recipes in simulations/experiments/ one after another, then building the results table.

A recipe is a run config (usually `extends` a shared `_*.toml` base); its output folder is <out_root>/<name>.
A finished recipe (summary.json present) is skipped and an interrupted one resumes from its log, so the command
can be stopped and started again at any point. With `keep`, each finished run's record (summary.json and
metrics.jsonl, the files the results table is built from) is copied to <keep>/<name>, as docs/runs/ keeps them.
"""

from __future__ import annotations

import fnmatch
import pathlib
import shutil
import signal
import subprocess
import sys
import threading

from fedseed.config import load_config

DEFAULT_DIR = pathlib.Path(__file__).parent / "experiments"


def recipe_paths(folder: pathlib.Path, only: list[str] | None = None) -> list[pathlib.Path]:
    """The recipes of a folder in name order (bases, named _*.toml, excluded), filtered by glob patterns."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no experiment folder {folder}")
    paths = sorted(p for p in folder.glob("*.toml") if not p.name.startswith("_"))
    if only:
        paths = [p for p in paths if any(fnmatch.fnmatch(p.stem, pat) for pat in only)]
        if not paths:
            raise ValueError(f"no recipe in {folder} matches {', '.join(only)}")
    return paths


def describe(path: pathlib.Path) -> str:
    """A recipe's leading comment (what it runs and how long it takes)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return " ".join(lines)


RECORD_FILES = ("summary.json", "metrics.jsonl")


def keep_record(run: pathlib.Path, keep_root: pathlib.Path) -> pathlib.Path:
    """Copy a finished run's record files into <keep_root>/<run name> (the round log, often gigabytes, stays)."""
    dest = keep_root / run.name
    dest.mkdir(parents=True, exist_ok=True)
    for name in RECORD_FILES:
        shutil.copy2(run / name, dest / name)
    return dest


def run_child(cmd: list[str]) -> int:
    """Run one recipe's process to its end. A SIGTERM to this process is passed on to it, so stopping the command
    stops its run too instead of leaving it computing for hours unwatched (Ctrl-C reaches both already)."""
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    on_main = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
    previous = signal.signal(signal.SIGTERM, lambda *_: child.terminate()) if on_main else None
    try:
        return child.wait()
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)
        if child.poll() is None:  # this process is leaving for another reason (an exception, KeyboardInterrupt)
            child.terminate()
            child.wait()


def run_recipes(folder: pathlib.Path, out_root: pathlib.Path, only: list[str] | None = None,
                progress: bool = True, keep: pathlib.Path | None = None) -> list[pathlib.Path]:
    """Run every selected recipe that has not finished, each in its own `fedseed simulate --resume` process (so
    its peak memory and wall time are its own), keeping each finished one's record under `keep` as it ends;
    returns the run folders of all selected recipes."""
    paths = recipe_paths(folder, only)
    for path in paths:  # every recipe is checked before the first one runs
        load_config(str(path))
    outs = []
    for path in paths:
        out = out_root / path.stem
        outs.append(out)
        if (out / "summary.json").is_file():
            print(f"[experiments] {path.stem}: finished earlier, kept ({out})", file=sys.stderr, flush=True)
            if keep is not None:
                keep_record(out, keep)
            continue
        state = "resuming" if (out / "log.sqlite").is_file() else "starting"
        print(f"[experiments] {path.stem}: {state} -> {out}", file=sys.stderr, flush=True)
        cmd = [sys.executable, "-m", "fedseed.cli", "simulate", str(path), "--out", str(out), "--resume"]
        code = run_child(cmd + ([] if progress else ["--quiet"]))
        if code != 0:
            raise RuntimeError(f"recipe {path.stem} stopped with exit status {code} (its run resumes "
                               "from its log when the command is run again)")
        if keep is not None:
            print(f"[experiments] {path.stem}: record kept in {keep_record(out, keep)}", file=sys.stderr, flush=True)
    return outs
