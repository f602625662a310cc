"""Client peak RSS while taking zeroth-order steps on SmolLM2 (batch 8 x 128) against the peak RSS of
inference on the same batch, each in its own process.

Both processes load the model first, then reset the kernel's high-water mark (/proc/self/clear_refs) and
report VmHWM after the work: the peak while working, with the loaded model counted in both. The ZO client
keeps the exact global state beside the weights it computes with, base w0 (fp32) and delta (int64): that
snapshot is reported on its own and also subtracted.

    .venv/bin/python bench/memory_rows.py --mode inference|zo   (prints one JSON line)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import Row


def _vm_hwm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _measure(mode: str) -> dict:
    import torch
    from common import smollm2_batch

    model, objective, batch = smollm2_batch()
    snapshot = 0
    if mode == "zo":
        from zo_rows import flat_state

        from fedseed.zo import spsa_scalar

        state = flat_state(model)
        snapshot = state.w0.numel() * 4 + state.delta.numel() * 8
        spsa_scalar(state, 1, 1e-3, "rademacher", lambda: objective.loss(model, batch), lr=1e-6)  # compile
    Path("/proc/self/clear_refs").write_text("5")
    for step in range(3):
        if mode == "zo":
            spsa_scalar(state, 2 + step, 1e-3, "rademacher", lambda: objective.loss(model, batch), lr=1e-6)
        else:
            with torch.inference_mode():
                objective.loss(model, batch)
    return {"mode": mode, "peak_rss": _vm_hwm_bytes(), "snapshot": snapshot}


def memory_rows() -> list[Row]:
    here = Path(__file__).resolve().parent
    got = {}
    for mode in ("inference", "zo"):
        out = subprocess.run([sys.executable, str(here / "memory_rows.py"), "--mode", mode], check=True,
                             capture_output=True, text=True).stdout
        got[mode] = json.loads(out.strip().splitlines()[-1])
    inf, zo = got["inference"]["peak_rss"], got["zo"]["peak_rss"]
    snap = got["zo"]["snapshot"]
    mib = 2**20
    return [Row("inference peak RSS, SmolLM2, batch 8x128", None, inf / mib, "MiB", "", "baseline"),
            Row("ZO client peak RSS, all of it", None, zo / inf, "x", "inference peak RSS", f"{zo / mib:.0f} MiB"),
            Row("  of which the kept snapshot (w0 fp32 + delta int64)", None, snap / mib, "MiB"),
            Row("ZO client peak RSS without the snapshot", None, (zo - snap) / inf, "x", "inference peak RSS")]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("inference", "zo"), required=True)
    print(json.dumps(_measure(ap.parse_args().mode)))
