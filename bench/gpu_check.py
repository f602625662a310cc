"""CPU = CUDA bit-identity of the randomness spec and the fixed-point state, on a lent GPU.

Runs every kernel (perturb, accumulate, materialize, project) for both direction kinds on a buffer of
SmolLM2's size, on the CPU (eager reference) and on CUDA (eager and compiled), and compares them bit for bit;
also times the CUDA kernels against a device copy of the same bytes. Prints a table and writes JSON to
--out when given. Usage: python bench/gpu_check.py [--size N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import SMOLLM2_SIZE  # noqa: E402

from fedseed import rng_spec  # noqa: E402
from fedseed.directions import DirectionEngine, coef_to_int  # noqa: E402


def run_ops(engine: DirectionEngine, kind: str, device: str, n: int) -> dict[str, torch.Tensor | float]:
    g = torch.Generator().manual_seed(0)
    w0 = (torch.randn(n, generator=g) * 0.05).to(device)
    w = w0.clone()
    delta = torch.zeros(n, dtype=torch.int64, device=device)
    for k, c in enumerate((3.1e-4, -7.7e-5, 1.3e-6, -2.5e-3)):
        engine.accumulate(delta, 0, 1000 + k, coef_to_int(c, kind), kind)
    engine.accumulate(delta[64 * 1000:64 * 5000], 64 * 1000, 77, coef_to_int(0.01, kind), kind)
    engine.materialize(w, w0, delta)
    mat = w.clone()
    engine.perturb(w, 0, 5, 1e-3, kind)
    engine.perturb(w, 0, 5, -2e-3, kind)
    dot = engine.project(w, w0, delta, 0, 9, kind)
    return {"delta": delta.cpu(), "materialized": mat.cpu(), "perturbed": w.cpu(), "project": dot}


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype == torch.float32:
        return torch.equal(a.view(torch.int32), b.view(torch.int32))
    return torch.equal(a, b)


def timed(fn: Callable[[], object], reps: int = 5) -> float:
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=SMOLLM2_SIZE)
    ap.add_argument("--out")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    n = -(-args.size // 64) * 64
    report: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "elements": n,
                    "spec": rng_spec.SPEC_VERSION, "checks": [], "timing": []}
    ok = True
    for kind in rng_spec.KINDS:
        ref = run_ops(DirectionEngine("eager"), kind, "cpu", n)
        for backend in ("eager", "compiled"):
            got = run_ops(DirectionEngine(backend), kind, "cuda", n)
            for key in ("delta", "materialized", "perturbed"):
                same = bits_equal(ref[key], got[key])
                ok &= same
                report["checks"].append({"kind": kind, "backend": backend, "tensor": key, "bit_identical": same})
                print(f"{kind:10s} cuda/{backend:8s} {key:12s} bit-identical to CPU: {same}")
            rel = abs(ref["project"] - got["project"]) / max(abs(ref["project"]), 1e-30)
            report["checks"].append({"kind": kind, "backend": backend, "tensor": "project", "rel_diff": rel})
            print(f"{kind:10s} cuda/{backend:8s} project      relative difference {rel:.2e} (a local value)")
    w = torch.zeros(n, device="cuda")
    dst = torch.empty_like(w)
    copy_s = timed(lambda: dst.copy_(w))
    for kind in rng_spec.KINDS:
        eng = DirectionEngine("compiled")
        perturb_s = timed(lambda eng=eng, kind=kind: eng.perturb(w, 0, 3, 1e-3, kind))
        row = {"kind": kind, "perturb_s": perturb_s, "copy_s": copy_s,
               "perturb_over_copy_bandwidth": copy_s / perturb_s}
        report["timing"].append(row)
        print(f"{kind:10s} compiled perturb {perturb_s * 1e3:.2f} ms vs device copy {copy_s * 1e3:.2f} ms "
              f"(same bytes): {copy_s / perturb_s:.2f} of copy bandwidth")
    report["all_bit_identical"] = ok
    print(f"CPU = CUDA bit for bit: {ok}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
