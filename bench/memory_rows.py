"""Client peak RSS while taking zeroth-order steps against the peak RSS of inference on the same batch, each in
a process of its own, on SmolLM2 (batch 8 x 128, the quickstart's objective) and on a randomly initialised
Llama of TinyLlama-1.1B's shape (batch 2 x 128, next-token loss on random ids; built from its config, no
download), in fp32 or (--dtype bfloat16) bf16 compute: a bf16 inference model against a compact state whose
forwards run in bf16.

Every process loads the model first, then resets the kernel's high-water mark (/proc/self/clear_refs) and
reports VmHWM after the work: the peak while working, with the loaded model counted in all. The wide state
keeps fp32 weights + the fp32 base + the int64 delta; the compact state keeps int32 weights and streams them,
one module at a time, into the forward (its scratch buffer is reported). The peak while loading is reported
too (VmHWM before the reset).

    .venv/bin/python bench/memory_rows.py [--model smollm2|llama-1b] [--dtype float32|bfloat16]
        (the table, to bench/results/memory_<model>[_bfloat16].txt)
    .venv/bin/python bench/memory_rows.py --precision                  (the compact state's precision per exponent)
    .venv/bin/python bench/memory_rows.py --mode inference|wide|compact --model ... --dtype ...  (one JSON line)
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from common import Row

MODELS = {"smollm2": ("SmolLM2", 8), "llama-1b": ("Llama 1.1B shape", 2)}
# the wide state of the 1.1B shape holds 16 B/weight beside the loaded model while it builds (~22 GB): not run
MODES = {"smollm2": ("inference", "wide", "compact"), "llama-1b": ("inference", "compact")}


def _vm_hwm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _workload(model_name: str):
    """(model, loss function) for the model's batch."""
    import torch

    if model_name == "smollm2":
        from common import smollm2_batch

        model, objective, batch = smollm2_batch()
        return model, lambda: objective.loss(model, batch)
    from common import llama_1b

    model = llama_1b()
    ids = torch.randint(0, model.config.vocab_size, (MODELS[model_name][1], 128),
                        generator=torch.Generator().manual_seed(0))
    return model, lambda: model(ids, labels=ids).loss


def _measure(mode: str, model_name: str, dtype: str = "float32") -> dict:
    import torch

    from fedseed.directions import DirectionEngine
    from fedseed.layout import build_layout, model_checksum
    from fedseed.state import build_state
    from fedseed.zo import spsa_scalar

    model, loss = _workload(model_name)
    state_bytes = scratch = 0
    if mode == "inference":
        model.to(getattr(torch, dtype))
    else:
        layout = build_layout(model, None, model_checksum(model))
        state = build_state(mode, model, layout, DirectionEngine("compiled"), getattr(torch, dtype))
        state_bytes = state.q.numel() * 4 if mode == "compact" else layout.size * (4 + 4 + 8)
        scratch = state._streamer.scratch.numel() * 4 if mode == "compact" else 0
        spsa_scalar(state, 1, 1e-3, "rademacher", loss, lr=1e-6)  # compile
    load_peak = _vm_hwm_bytes()
    Path("/proc/self/clear_refs").write_text("5")
    for step in range(2):
        if mode == "inference":
            with torch.inference_mode():
                loss()
        else:
            spsa_scalar(state, 2 + step, 1e-3, "rademacher", loss, lr=1e-6)
    return {"mode": mode, "peak_rss": _vm_hwm_bytes(), "load_peak": load_peak, "state_bytes": state_bytes,
            "scratch": scratch, "weights": sum(p.numel() for p in model.parameters())}


def precision_rows(model_name: str = "smollm2") -> list[Row]:
    """Per exponent class of the compact state: the smallest update a weight receives (its unit) against fp32's
    ulp at the class's median |w|, and how many weights the base needed rounded."""
    import torch

    from fedseed.compact import CompactState
    from fedseed.directions import DirectionEngine
    from fedseed.layout import build_layout, model_checksum

    model, _ = _workload(model_name)
    layout = build_layout(model, None, model_checksum(model))
    state = CompactState(model, layout, DirectionEngine("compiled"))
    rows = [Row(f"compact state of {MODELS[model_name][0]}: base weights rounded", None, state.base_rounded,
                "weights", "", f"of {layout.num_trainable:,}")]
    for s in sorted(set(state.exponents)):
        slots = [slot for slot, e in zip(layout.slots, state.exponents) if e == s]
        mags = torch.cat([state.q[sl.offset:sl.offset + sl.numel].abs().to(torch.float64) * 2.0**-s
                          for sl in slots])
        median = float(mags[mags > 0].median())
        ulp = 2.0 ** (math.floor(math.log2(median)) - 23)
        rows.append(Row(f"  exponent {s}: {mags.numel():,} weights, median |w| {median:.3g}", None, 2.0**-s / ulp,
                        "x", "fp32 ulp at the median |w|", f"smallest update {2.0**-s:.2g}, fp32 ulp {ulp:.2g}"))
    return rows


def run_mode(mode: str, model_name: str, dtype: str = "float32") -> dict:
    here = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, str(here / "memory_rows.py"), "--mode", mode, "--model", model_name,
                          "--dtype", dtype], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def memory_rows(models: tuple[str, ...] = ("smollm2", "llama-1b"), dtype: str = "float32") -> list[Row]:
    mib = 2**20
    rows = []
    for name in models:
        label, batch_rows = MODELS[name]
        modes = MODES[name] if dtype == "float32" else ("inference", "compact")  # wide: fp32 master weights only
        got = {mode: run_mode(mode, name, dtype) for mode in modes}
        inf = got["inference"]["peak_rss"]
        n = got["compact"]["weights"]
        rows.append(Row(f"inference peak RSS, {label}, {dtype}, batch {batch_rows}x128", None, inf / mib, "MiB", "",
                        f"{n / 1e6:.0f}M weights"))
        for mode in modes[1:]:
            g = got[mode]
            rows.append(Row(f"ZO client peak RSS, {mode} state, all of it", None, g["peak_rss"] / inf, "x",
                            "inference peak RSS", f"{g['peak_rss'] / mib:.0f} MiB; state "
                            f"{g['state_bytes'] / n:.1f} B/weight; loading peaked at {g['load_peak'] / mib:.0f} MiB"))
        if dtype != "float32":  # the state's int32 is not the bf16 model's 2 B/weight: count it on its own too
            c = got["compact"]
            rows.append(Row("ZO client peak RSS, compact state, all of it", None,
                            c["peak_rss"] / (inf + c["state_bytes"]), "x", "inference peak RSS + the state's bytes",
                            f"state {c['state_bytes'] / mib:.0f} MiB"))
        rows.append(Row("  compact: the streaming scratch buffer (largest module)", None,
                        got["compact"]["scratch"] / mib, "MiB"))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("inference", "wide", "compact"))
    ap.add_argument("--precision", action="store_true", help="only the compact state's precision rows")
    ap.add_argument("--model", choices=tuple(MODELS), default="smollm2")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = ap.parse_args()
    if args.precision:
        from speed import format_table

        print(format_table(precision_rows(args.model)))
    elif args.mode:
        print(json.dumps(_measure(args.mode, args.model, args.dtype)))
    else:
        from speed import format_table

        table = format_table(memory_rows((args.model,), args.dtype))
        print(table)
        suffix = "" if args.dtype == "float32" else f"_{args.dtype}"
        out = Path(__file__).resolve().parent / "results" / f"memory_{args.model}{suffix}.txt"
        out.write_text(table + "\n")
