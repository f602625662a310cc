"""The speed suite on CUDA, for when a GPU is lent: one script, under 10 minutes on an H200.

    .venv/bin/python bench/gpu.py [--seeds 1024] [--out bench/results/speed_cuda.json]

1. CPU = CUDA bit identity (bench/gpu_check.py's checks on SmolLM2's size, plus a 1024-seed many-seed pass
   on CUDA against the CPU's seed-by-seed eager reference);
2. the rows of bench/speed.py on the device: device copy bandwidth, one-seed perturb vs normal_ + add_ and as
   a fraction of the copy (goal >= 0.7), the n-seed rebuild vs the FedKSeed-style loop and vs n one-seed
   passes, and a zeroth-order step vs 2 x forward on SmolLM2, batch 8 x 128;
3. the compact state (bench/gpu_state_rows.py): CUDA = CPU, materialising bandwidth against a device copy,
   step vs 2 forwards at batch 16 x 128 in fp32 and bf16, client max_memory_allocated against inference;
4. tests/test_cuda.py: a CPU coordinator and a CUDA client (bf16 forwards) ending a run on one checksum.
Exit status 1 when any bit-identity check or the test fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_state_rows  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import ROOT, SMOLLM2_SIZE, Row, smollm2_batch  # noqa: E402
from gpu_check import bits_equal, run_ops  # noqa: E402
from kernel_rows import kernel_rows  # noqa: E402
from rebuild_rows import rebuild_rows  # noqa: E402
from speed import format_table  # noqa: E402
from zo_rows import zo_rows  # noqa: E402

from fedseed import rng_spec  # noqa: E402
from fedseed.directions import DirectionEngine, coef_to_int  # noqa: E402


def identity_checks(n: int, seeds: int) -> list[dict]:
    checks = []
    for kind in rng_spec.KINDS:
        ref = run_ops(DirectionEngine("eager"), kind, "cpu", n)
        got = run_ops(DirectionEngine("compiled"), kind, "cuda", n)
        for key in ("delta", "materialized", "perturbed"):
            checks.append({"kind": kind, "tensor": key, "bit_identical": bits_equal(ref[key], got[key])})
        rng = np.random.default_rng(1)
        size = 8192 * 8 + 64 * 5
        pairs = [(int(s), coef_to_int(float(c), kind)) for s, c in
                 zip(rng.integers(0, 2**62, seeds), rng.normal(0, 1e-6, seeds))]
        cpu = torch.zeros(size, dtype=torch.int64)
        for s, c in pairs:
            DirectionEngine("eager").accumulate(cpu, 64, s, c, kind)
        cuda = torch.zeros(size, dtype=torch.int64, device="cuda")
        DirectionEngine("compiled").accumulate_many(cuda, 64, [s for s, _ in pairs], [c for _, c in pairs], kind)
        checks.append({"kind": kind, "tensor": f"{seeds}-seed pass", "bit_identical": torch.equal(cpu, cuda.cpu())})
    for c in checks:
        print(f"{c['kind']:10s} {c['tensor']:16s} CUDA compiled bit-identical to CPU eager: {c['bit_identical']}")
    return checks


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "speed_cuda.json"))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return 0
    checks = identity_checks(SMOLLM2_SIZE, args.seeds)
    rows = kernel_rows(SMOLLM2_SIZE, args.repeats, device="cuda")
    model, objective, batch = smollm2_batch(device="cuda")
    shapes = [tuple(p.shape) for p in model.parameters()]
    for kind in rng_spec.KINDS:
        rows += rebuild_rows(shapes, args.seeds, kind, baseline_seeds=16, device="cuda")
    rows += zo_rows(model, objective, batch, args.repeats, rng_spec.KINDS)
    del model
    state_rows, state_ok = gpu_state_rows.identity_rows()
    rows += state_rows + gpu_state_rows.bandwidth_rows(args.repeats) + gpu_state_rows.step_rows(args.repeats)
    rows += gpu_state_rows.memory_rows()
    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_cuda.py"], cwd=ROOT,
                          capture_output=True, text=True)
    print(test.stdout[-2000:])
    rows.append(Row("tests/test_cuda.py (CPU coordinator + CUDA client, equal checksums)", None,
                    float(test.returncode == 0), "(1 = passed)"))
    header = f"fedseed bench/gpu.py: {torch.cuda.get_device_name()}, torch {torch.__version__}"
    print(header + "\n" + format_table(rows))
    ok = all(c["bit_identical"] for c in checks) and state_ok and test.returncode == 0
    print(f"CPU = CUDA bit for bit: {ok}")
    Path(args.out).write_text(json.dumps({"header": header, "checks": checks, "all_bit_identical": ok,
                                          "rows": [dataclasses.asdict(r) for r in rows]}, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
