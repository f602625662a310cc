"""Starting and resuming a run's log, one rule for every driver: what a resumed run may change, how its state
comes back (weights rebuilt from the logged updates and checked against the logged checksum, strategy state
loaded as it was saved after the last round), and what a new log records first."""

from __future__ import annotations

import json
import secrets

from fedseed import rng_spec
from fedseed.config import Config, to_dict
from fedseed.records import RoundRecord
from fedseed.replay import catch_up
from fedseed.round_machine import RoundMachine
from fedseed.roundlog import RoundLog

# what may differ between a run and its resumption: where it writes, and how a simulation runs its clients
MAY_CHANGE = {"simulation": None, "run": {"out"}}


def comparable(config: dict) -> dict:
    doc = json.loads(json.dumps(config))
    for section, keys in MAY_CHANGE.items():
        if keys is None:
            doc.pop(section, None)
        else:
            for key in keys:
                doc.get(section, {}).pop(key, None)
    return doc


def config_differences(logged: dict, cfg: Config) -> list[str]:
    """The keys (section.key) in which cfg differs from the run's logged configuration."""
    old, new = comparable(logged), comparable(to_dict(cfg))
    return sorted(f"{s}.{k}" for s in set(old) | set(new)
                  for k in set(old.get(s, {})) | set(new.get(s, {})) if old.get(s, {}).get(k) != new.get(s, {}).get(k))


def start_log(log: RoundLog, cfg: Config, fingerprint: str, layout_json: str, base_checksum: str) -> str:
    """Write a new run's settings into its log; returns the run id."""
    run_id = secrets.token_hex(8)
    log.set_meta(config=to_dict(cfg), layout=layout_json, fingerprint=fingerprint, spec_version=rng_spec.SPEC_VERSION,
                 strategy=cfg.strategy.name, run_id=run_id, base_checksum=base_checksum)
    return run_id


def check_resumable(log: RoundLog, cfg: Config, fingerprint: str) -> None:
    """Refuse (ValueError) to continue a run with another configuration or model."""
    diff = config_differences(log.meta("config"), cfg)
    if diff:
        raise ValueError(f"{log.path.parent} was run with another configuration (differs in {', '.join(diff)})")
    if log.meta("fingerprint") != fingerprint:
        raise ValueError(f"{log.path.parent} was run on another model (layout fingerprint differs)")


def restore(machine: RoundMachine, log: RoundLog) -> list[RoundRecord]:
    """Bring a machine to the log's last round; returns the run's records (round 0 first)."""
    last = log.last_round()
    for update in log.updates(1, last):
        machine.delta_bound += machine.growth(update)
    if machine.state is not None and last:
        catch_up(machine.state, log.updates(1, last))
        if log.checksum(last) and machine.state.checksum() != log.checksum(last):
            raise ValueError(f"weights rebuilt from {log.path} do not match its round-{last} checksum")
    if last:
        state = log.strategy_state(last)
        if state is None and machine.saved_state():
            raise ValueError(f"{log.path} was written by an older fedseed that did not save strategy state; "
                             "it can be inspected and exported, not resumed")
        machine.load_saved_state(state or {})
    try:
        zero = log.meta("round0")
    except KeyError:
        raise ValueError(f"{log.path} holds no round-0 record (written by an older fedseed?); it can be "
                         "inspected and exported, not resumed") from None
    return [RoundRecord.from_json(zero), *(RoundRecord.from_json(m) for m in log.metrics())]
