"""The speed suite: every row is a ratio measured side by side in this one run, on this machine's CPU.

    .venv/bin/python bench/speed.py [--seeds 1024] [--repeats 5] [--kinds rademacher,gaussian]

Rows (each names its baseline):
  * memcpy bandwidth of the machine (fp32 copy), the anchor of every pass over the weights;
  * one-seed perturb vs Tensor.normal_ + add_ on the same weights, and as a fraction of memcpy;
  * n-seed rebuild of SmolLM2 (n = 1024) in one pass vs the FedKSeed-style loop and vs n one-seed passes;
  * one zeroth-order step vs 2 x forward on SmolLM2, batch 8 x 128 (wide state; compact state in fp32 and bf16);
  * ZO client peak RSS vs inference peak RSS on the same batch (the kept snapshot reported on its own).
The table is printed and written to bench/results/speed_cpu.json. `bench/gpu.py` is the CUDA counterpart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import ROOT, SMOLLM2_SIZE, Row, smollm2_batch  # noqa: E402
from kernel_rows import kernel_rows  # noqa: E402
from memory_rows import memory_rows  # noqa: E402
from rebuild_rows import rebuild_rows  # noqa: E402
from zo_rows import bf16_rows, compact_zo_rows, zo_rows  # noqa: E402


def format_table(rows: list[Row]) -> str:
    lines = [f"{'row':60s} {'time':>10s}  {'figure':>22s}  against"]
    for r in rows:
        t = f"{r.seconds * 1e3:8.1f} ms" if r.seconds is not None else ""
        fig = f"{r.ratio:.2f} {r.unit}" if r.ratio is not None else ""
        against = r.baseline + (f" ({r.note})" if r.note else "")
        lines.append(f"{r.name:60s} {t:>10s}  {fig:>22s}  {against}")
    return "\n".join(lines)


PARTS = ("memory", "kernels", "rebuild", "zo", "compact")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--kinds", default="rademacher,gaussian")
    ap.add_argument("--only", default=",".join(PARTS), help=f"a comma list of {', '.join(PARTS)}")
    ap.add_argument("--out", default="", help="JSON file (default bench/results/speed_cpu[_PARTS].json)")
    args = ap.parse_args()
    kinds, parts = tuple(args.kinds.split(",")), args.only.split(",")
    if unknown := set(parts) - set(PARTS):
        ap.error(f"unknown part(s) {', '.join(sorted(unknown))}; expected {', '.join(PARTS)}")
    rows = memory_rows() if "memory" in parts else []  # first: its processes must not share the machine
    if "kernels" in parts:
        rows += kernel_rows(SMOLLM2_SIZE, args.repeats)
    if "rebuild" in parts or "zo" in parts:
        model, objective, batch = smollm2_batch()
        for kind in kinds if "rebuild" in parts else ():
            shapes = [tuple(p.shape) for p in model.parameters()]
            rows += rebuild_rows(shapes, args.seeds, kind, many_repeats=2 if kind == "rademacher" else 1)
        if "zo" in parts:
            rows += zo_rows(model, objective, batch, args.repeats, kinds)
            rows += bf16_rows(model, objective, batch, args.repeats)
        del model
    if "compact" in parts:
        rows += compact_zo_rows(smollm2_batch, ("float32", "bfloat16"), args.repeats)
    header = (f"fedseed bench/speed.py: {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, "
              f"torch {torch.__version__}, best of {args.repeats}")
    table = format_table(rows)
    print(header + "\n" + table)
    suffix = "" if set(parts) == set(PARTS) else "_" + "_".join(parts)
    out = Path(args.out or ROOT / "bench" / "results" / f"speed_cpu{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"header": header, "rows": [dataclasses.asdict(r) for r in rows]}, indent=1) + "\n")
    out.with_suffix(".txt").write_text(header + "\n" + table + "\n")


if __name__ == "__main__":
    main()
