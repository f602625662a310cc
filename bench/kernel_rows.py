"""One-seed perturb against Tensor.normal_ + add_ and against the machine's memcpy, on one buffer,
timed in interleaved rounds."""

from __future__ import annotations

import torch
from common import Row, best_interleaved

from fedseed.directions import DirectionEngine


def kernel_rows(n: int, repeats: int, device: str = "cpu") -> list[Row]:
    w = torch.randn(n, device=device) * 0.05
    dst = torch.empty_like(w)
    noise = torch.empty_like(w)
    engine = DirectionEngine("compiled")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def normal_add() -> None:
        noise.normal_()
        w.add_(noise, alpha=1e-3)

    fns = {"copy": lambda: (dst.copy_(w), sync()), "normal_add": lambda: (normal_add(), sync())}
    for kind in ("rademacher", "gaussian"):
        fns[kind] = lambda k=kind: (engine.perturb(w, 0, 12345, 1e-3, k), sync())
    t = best_interleaved(fns, repeats)
    t_copy, t_base = t["copy"], t["normal_add"]
    rows = [Row("memcpy (fp32 copy: read 4 B + write 4 B per weight)", t_copy, 2 * 4 * n / 1e9 / t_copy, "GB/s"),
            Row("normal_ + add_ (the usual perturbation)", t_base, None, "", "", "baseline")]
    for kind in ("rademacher", "gaussian"):
        rows.append(Row(f"one-seed perturb, {kind}", t[kind], t_base / t[kind], "x faster", "normal_ + add_"))
        rows.append(Row(f"one-seed perturb, {kind}, bandwidth", t[kind], t_copy / t[kind], "of memcpy", "memcpy"))
    return rows
