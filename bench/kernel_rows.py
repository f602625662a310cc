"""One-seed perturb against Tensor.normal_ + add_ and against the machine's memcpy, on one buffer."""

from __future__ import annotations

import torch
from common import Row, best_of

from fedseed.directions import DirectionEngine


def kernel_rows(n: int, repeats: int, device: str = "cpu") -> list[Row]:
    w = torch.randn(n, device=device) * 0.05
    dst = torch.empty_like(w)
    noise = torch.empty_like(w)
    engine = DirectionEngine("compiled")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def timed(fn) -> float:
        return best_of(lambda: (fn(), sync()), repeats)

    t_copy = timed(lambda: dst.copy_(w))
    rows = [Row("memcpy (fp32 copy: read 4 B + write 4 B per weight)", t_copy, 2 * 4 * n / 1e9 / t_copy, "GB/s")]

    def normal_add() -> None:
        noise.normal_()
        w.add_(noise, alpha=1e-3)

    t_base = timed(normal_add)
    rows.append(Row("normal_ + add_ (the usual perturbation)", t_base, None, "", "", "baseline"))
    for kind in ("rademacher", "gaussian"):
        t = timed(lambda k=kind: engine.perturb(w, 0, 12345, 1e-3, k))
        rows.append(Row(f"one-seed perturb, {kind}", t, t_base / t, "x faster", "normal_ + add_"))
        rows.append(Row(f"one-seed perturb, {kind}, bandwidth", t, t_copy / t, "of memcpy", "memcpy"))
    return rows
