"""The speed suite: every row is a ratio measured side by side in this one run, on this machine's CPU.

    .venv/bin/python bench/speed.py [--seeds 1024] [--repeats 5] [--kinds rademacher,gaussian]

Rows (each names its baseline):
  * memcpy bandwidth of the machine (fp32 copy), the anchor of every pass over the weights;
  * one-seed perturb vs Tensor.normal_ + add_ on the same weights, and as a fraction of memcpy;
  * n-seed rebuild of SmolLM2 (n = 1024) in one pass vs the FedKSeed-style loop and vs n one-seed passes;
  * one zeroth-order step vs 2 x forward on SmolLM2, batch 8 x 128;
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
from zo_rows import bf16_rows, zo_rows  # noqa: E402


def format_table(rows: list[Row]) -> str:
    lines = [f"{'row':60s} {'time':>10s}  {'figure':>22s}  against"]
    for r in rows:
        t = f"{r.seconds * 1e3:8.1f} ms" if r.seconds is not None else ""
        fig = f"{r.ratio:.2f} {r.unit}" if r.ratio is not None else ""
        against = r.baseline + (f" ({r.note})" if r.note else "")
        lines.append(f"{r.name:60s} {t:>10s}  {fig:>22s}  {against}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--kinds", default="rademacher,gaussian")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "speed_cpu.json"))
    args = ap.parse_args()
    kinds = tuple(args.kinds.split(","))
    rows = memory_rows()  # first: its processes must not share the machine with the big buffers below
    rows += kernel_rows(SMOLLM2_SIZE, args.repeats)
    model, objective, batch = smollm2_batch()
    shapes = [tuple(p.shape) for p in model.parameters()]
    for kind in kinds:
        rows += rebuild_rows(shapes, args.seeds, kind, many_repeats=2 if kind == "rademacher" else 1)
    rows += zo_rows(model, objective, batch, args.repeats, kinds)
    rows += bf16_rows(model, objective, batch, args.repeats)
    header = (f"fedseed bench/speed.py: {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, "
              f"torch {torch.__version__}, best of {args.repeats}")
    table = format_table(rows)
    print(header + "\n" + table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"header": header, "rows": [dataclasses.asdict(r) for r in rows]},
                                         indent=1) + "\n")


if __name__ == "__main__":
    main()
