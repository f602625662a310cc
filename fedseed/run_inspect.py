"""`fedseed inspect RUN`: a run's rounds at a glance -- who took part, bytes each way, metrics, checksums."""

from __future__ import annotations

import json

from fedseed.roundlog import RoundLog


def inspect_run(run: str, as_json: bool = False) -> str:
    log = RoundLog.open_existing(run)
    try:
        header = (f"run {run}: strategy {log.meta('strategy')}, spec {log.meta('spec_version')}, "
                  f"{log.last_round()} rounds, layout {log.meta('fingerprint')[:16]}…")
        rows = []
        for m in log.metrics():
            r = m["round"]
            clients = [res.client for res in log.client_results(r)]
            rows.append({"round": r, "clients": clients, "dropped": m.get("dropped", []),
                         "bytes_up": m.get("bytes_up"), "bytes_down": m.get("bytes_down"),
                         "bytes_per_client": m.get("bytes_per_client"), "train_loss": m.get("train_loss"),
                         **{k: v for k, v in m.items() if k.startswith("eval_")}, "checksum": log.checksum(r)})
    finally:
        log.close()
    if as_json:
        return "\n".join(json.dumps(r) for r in rows)
    lines = [header, f"{'round':>5} {'clients':<24} {'dropped':<10} {'up B':>9} {'down B':>9} {'B/client':>9} "
                     f"{'loss':>8} {'eval':>8}  checksum"]
    for r in rows:
        loss = "-" if r["train_loss"] is None else f"{r['train_loss']:.4f}"
        ev = r.get("eval_accuracy", r.get("eval_loss"))
        lines.append(f"{r['round']:>5} {','.join(map(str, r['clients'])):<24} "
                     f"{','.join(map(str, r['dropped'])) or '-':<10} {r['bytes_up'] or 0:>9} {r['bytes_down'] or 0:>9} "
                     f"{r['bytes_per_client'] or 0:>9} {loss:>8} {'-' if ev is None else f'{ev:.4f}':>8}  "
                     f"{r['checksum'] or '(not yet known)'}")
    return "\n".join(lines)
