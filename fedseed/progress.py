"""The live per-round line of a run, simulated or federated (round, clients, metric, bytes, ETA), and optional
TensorBoard scalars."""

from __future__ import annotations

import pathlib
import sys

from fedseed.records import RoundRecord

METRIC_KEYS = ("eval_accuracy", "eval_rougeL", "eval_loss")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def human_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def round_line(rec: RoundRecord, total_rounds: int, total_bytes: int, eta_s: float) -> str:
    m = rec.to_json()
    parts = [f"round {m['round']}/{total_rounds}"]
    dropped = len(rec.dropped) - len(rec.late)
    extra = [f"{n} {k}" for k, n in (("dropped", dropped), ("late", len(rec.late))) if n]
    parts.append(f"clients {m['clients']}" + (f" ({', '.join(extra)})" if extra else ""))
    if m.get("train_loss") is not None:
        parts.append(f"train_loss {m['train_loss']:.4f}")
    parts += [f"{k} {m[k]:.4f}" for k in METRIC_KEYS if k in m]
    parts.append(f"bytes {human_bytes(m['bytes_up'] + m['bytes_down'])} (total {human_bytes(total_bytes)})")
    parts.append(f"{m['wall_s'] + m.get('eval_s', 0.0):.1f} s")
    parts.append(f"ETA {human_seconds(eta_s)}")
    return "  ".join(parts)


class Progress:
    """Prints one line per round to stderr (unless quiet) and mirrors scalars to TensorBoard when asked."""

    def __init__(self, total_rounds: int, enabled: bool, tensorboard_dir: pathlib.Path | None = None,
                 prefix: str = "") -> None:
        self.total_rounds = total_rounds
        self.prefix = prefix
        self.enabled = enabled
        self.total_bytes = 0  # a resumed run adds its logged rounds with `resume_from`
        self.round_times: list[float] = []
        self.writer = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise RuntimeError("simulation.tensorboard = true needs TensorBoard: pip install tensorboard") from None
            self.writer = SummaryWriter(str(tensorboard_dir))

    def resume_from(self, records: list[RoundRecord]) -> None:
        self.total_bytes = sum(r.bytes_up + r.bytes_down for r in records)

    def round_done(self, rec: RoundRecord) -> None:
        m = rec.to_json()
        self.total_bytes += rec.bytes_up + rec.bytes_down
        self.round_times.append(rec.wall_s + rec.eval_s)
        recent = self.round_times[-5:]
        eta = (self.total_rounds - rec.round) * sum(recent) / len(recent)
        if self.enabled:
            print(self.prefix + round_line(rec, self.total_rounds, self.total_bytes, eta), file=sys.stderr, flush=True)
        if self.writer is not None:
            for key in ("train_loss", *METRIC_KEYS, "bytes_up", "bytes_down", "clients", "wall_s"):
                if m.get(key) is not None:
                    self.writer.add_scalar(key, m[key], m["round"])
            self.writer.add_scalar("total_bytes", self.total_bytes, m["round"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
