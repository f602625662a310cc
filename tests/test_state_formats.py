"""Which state a run gets (model.state), and logs written before the compact state still replaying."""

import shutil

import pytest

from fedseed.config import ConfigError, build_config, load_document
from fedseed.replay import materialize_round
from fedseed.roundlog import RoundLog

SMOKE = "simulations/smoke.toml"


def load_config(path: str, overrides: list[str]):
    """smoke.toml with only the strategy keys every strategy shares, then the overrides."""
    base = [o for o in overrides if not o.startswith("strategy.name=")]
    doc = load_document(path, [o for o in base if not o.startswith("strategy.")])
    doc["strategy"] = {k: v for k, v in doc["strategy"].items() if k in ("eps", "codec", "lr")}
    for o in overrides:
        if o.startswith("strategy."):
            key, value = o.removeprefix("strategy.").split("=")
            doc["strategy"][key] = int(value) if value.isdigit() else value
    return build_config(doc)
OLD_LOG = "tests/data/wide_log_before_compact.sqlite"  # smoke.toml, 3 rounds, written by fedseed before it


@pytest.mark.parametrize("overrides, expected", [
    ([], "compact"),
    (["strategy.direction=gaussian"], "wide"),
    (["strategy.name=ferret", "strategy.num_bases=16"], "wide"),
    (["strategy.name=fedavg"], "wide"),
    (["model.state=wide"], "wide"),
    (["strategy.name=onebyte"], "compact"),
])
def test_auto_picks_compact_where_it_can(overrides, expected):
    assert load_config(SMOKE, overrides).model.state == expected


@pytest.mark.parametrize("overrides, match", [
    (["model.state=compact", "strategy.name=ferret", "strategy.num_bases=16"], "trains with backpropagation"),
    (["model.state=compact", "strategy.direction=gaussian"], "rademacher directions only"),
    (["model.state=narrow"], "must be 'auto', 'compact' or 'wide'"),
])
def test_a_compact_state_that_cannot_work_is_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(SMOKE, overrides)


def test_a_log_written_before_the_compact_state_replays_to_its_checksums(tmp_path):
    shutil.copy(OLD_LOG, tmp_path / "log.sqlite")
    with RoundLog.open_existing(tmp_path) as log:
        assert "state" not in log.meta("config")["model"]
        for r in (1, 3):
            _, state = materialize_round(log, r)  # raises unless the rebuilt weights match the logged checksum
            assert state.format == "wide" and state.checksum() == log.checksum(r)
