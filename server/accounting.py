"""What the coordinator records: serialized bytes per round and call, each round's metrics row, the run's
summary."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fedseed.server.rounds import OpenRound
from fedseed.strategies.base import ClientResult


@dataclass
class Traffic:
    up: int = 0
    down: int = 0
    messages: int = 0
    by_method: dict = field(default_factory=dict)

    def add(self, method: str, up: int, down: int) -> None:
        self.up += up
        self.down += down
        self.messages += 1
        m = self.by_method.setdefault(method, [0, 0])
        m[0] += up
        m[1] += down


def round_metrics(o: OpenRound, results: list[ClientResult], t: Traffic, evaluated: dict, checksum: str,
                  close_s: float, why_dropped: dict[str, str]) -> dict:
    """The round's record: planned (the final draw's size), drawn (every attempt's clients), reported, and each
    drawn client that did not make it with the reason."""
    losses = [x.train_loss for x in results if np.isfinite(x.train_loss)]
    return {"round": o.plan.round, "clients": len(results), "planned": len(o.plan.clients),
            "drawn": sorted(set(o.plan.clients) | set(o.drawn_before)), "reported": [x.client for x in results],
            "dropped": sorted(int(c) for c in why_dropped), "why_dropped": why_dropped, "attempts": o.attempt + 1,
            "train_loss": float(np.mean(losses)) if losses else None,
            "bytes_up": t.up, "bytes_down": t.down, "messages": t.messages,
            "bytes_per_client": round((t.up + t.down) / max(1, len(results)), 1),
            "bytes_by_method": t.by_method, **evaluated,
            "round_s": round(time.time() - o.opened, 3), "close_s": round(close_s, 3), "checksum": checksum}


def run_summary(strategy: str, rows: list[dict], final_checksum: str, wall_s: float) -> dict:
    """Bytes per client per round averaged over the rounds after the first (round 1 also carries the Joins)."""
    trained = [row for row in rows if row.get("round", 0) > 0]
    steady = [row["bytes_per_client"] for row in trained[1:]] or [row["bytes_per_client"] for row in trained]
    return {"strategy": strategy, "rounds": trained[-1]["round"] if trained else 0, "final_checksum": final_checksum,
            "bytes_per_client_round": float(np.mean(steady)) if steady else 0.0,
            "final": {k: v for k, v in (trained[-1] if trained else {}).items() if k.startswith("eval_")},
            "wall_s": round(wall_s, 1)}


def progress_line(m: dict, rounds: int) -> str:
    """One line per closed round, as the simulation prints one."""
    evals = " ".join(f"{k} {v:.4f}" for k, v in m.items() if k.startswith("eval_") and isinstance(v, float))
    dropped = f", dropped {','.join(m['why_dropped'])}" if m["why_dropped"] else ""
    return (f"fedseed server: round {m['round']}/{rounds}: {m['clients']} clients{dropped}, "
            f"{m['bytes_per_client']:.0f} B/client, {m['round_s']:.1f} s {evals}").rstrip()
