"""`fedseed inspect RUN`: a run's rounds at a glance -- who took part, who did not and why, bytes each way,
metrics, checksums, and in a private run the epsilon spent after each round -- for any run's log (simulated or
federated)."""

from __future__ import annotations

import json

from fedseed.records import RoundRecord
from fedseed.roundlog import RoundLog


def inspect_run(run: str, as_json: bool = False) -> str:
    log = RoundLog.open_existing(run)
    try:
        header = (f"run {run}: strategy {log.meta('strategy')}, spec {log.meta('spec_version')}, "
                  f"{log.last_round()} rounds, layout {log.meta('fingerprint')[:16]}…")
        header += privacy_note(meta_or(log, "config", {}).get("privacy", {}), meta_or(log, "privacy", {}))
        records = [RoundRecord.from_json(m) for m in log.metrics()]
        checksums = {r.round: log.checksum(r.round) for r in records}  # a log-only coordinator learns them later
    finally:
        log.close()
    if as_json:
        return "\n".join(json.dumps(r.to_json() | {"checksum": checksums[r.round]}) for r in records)
    lines = [header, f"{'round':>5} {'clients':<24} {'dropped':<10} {'up B':>9} {'down B':>9} {'B/client':>9} "
                     f"{'loss':>8} {'eval':>8} {'epsilon':>8}  checksum"]
    for r in records:
        loss = "-" if r.train_loss is None else f"{r.train_loss:.4f}"
        ev = r.evals.get("eval_accuracy", r.evals.get("eval_loss"))
        lines.append(f"{r.round:>5} {','.join(map(str, r.reported)):<24} {','.join(map(str, r.dropped)) or '-':<10} "
                     f"{r.bytes_up:>9} {r.bytes_down:>9} {r.bytes_per_client:>9.0f} {loss:>8} "
                     f"{'-' if ev is None else f'{ev:.4f}':>8} {'-' if r.epsilon is None else f'{r.epsilon:.3f}':>8}  "
                     f"{checksums[r.round] or '(not yet known)'}")
        if r.flagged:
            lines.append(f"{'':>5}   {'rolled back' if r.rolled_back else 'flagged'}: {r.flagged}")
        lines += [f"{'':>5}   client {c} not in the round: {why}" for c, why in r.why_dropped.items()]
    return "\n".join(lines)


def privacy_note(p: dict, constants: dict) -> str:
    """What the run's [privacy] table promised, and the noise it drew, for the header."""
    parts = []
    if p.get("secure_aggregation"):
        parts.append(f"secure aggregation (sums over >= {p.get('min_clients')} clients)")
    if p.get("dp", "off") != "off":
        parts.append(f"dp {p['dp']} (budget epsilon {p.get('epsilon')} at delta {p.get('delta')}, "
                     f"clip {p.get('clip')})")
    if not parts:
        return ""
    noise = ""
    if "noise_multiplier" in constants:
        noise = (f"; noise multiplier {constants['noise_multiplier']:.4g}, at most "
                 f"{constants['rounds_per_client']} rounds per client")
    return f"; private: {' + '.join(parts)}{noise}"


def meta_or(log: RoundLog, key: str, default: dict) -> dict:
    """A log's meta value, or the default for a log written before it existed."""
    try:
        return log.meta(key)
    except KeyError:
        return default
