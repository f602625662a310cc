"""Bad configurations give one clear line naming the key and exit code 2; good ones parse with overrides."""

import subprocess
import sys

import pytest

from fedseed.cli import main
from fedseed.config import ConfigError, load_config

SMOKE = "simulations/smoke.toml"


def test_smoke_config_parses_with_overrides():
    cfg = load_config(SMOKE, ["run.rounds=2", "strategy.codec=fp16", "model.trainable=['norm']"])
    assert cfg.run.rounds == 2 and cfg.strategy.codec == "fp16" and cfg.model.trainable == ["norm"]
    assert cfg.strategy.num_seeds == 256


@pytest.mark.parametrize("override,fragment", [
    ("strategy.bogus=1", "unknown config key 'strategy.bogus' for strategy 'fedkseed'"),
    ("federation.num_clients='many'", "'federation.num_clients' must be int"),
    ("strategy.name=fedsgd", "'strategy.name': unknown strategy 'fedsgd'"),
    ("strategy.direction=uniform", "unknown direction kind 'uniform'"),
    ("strategy.codec=int4", "unknown codec 'int4'"),
    ("data.source=jsonl", "'data.path'"),
    ("model.name=no/such/folder", "'model.name'"),
    ("federation.clients_per_round=99", "'federation.clients_per_round'"),
    ("nosuch.key=1", "unknown config section 'nosuch'"),
    ("strategy.lr=-1", "strategy.lr"),
])
def test_bad_config_names_the_key(override, fragment):
    with pytest.raises(ConfigError, match=None) as err:
        load_config(SMOKE, [override])
    assert fragment in str(err.value)


def test_cli_bad_config_exits_2_with_one_line(tmp_path, capsys):
    assert main(["simulate", SMOKE, "--set", "strategy.bogus=1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fedseed: error: unknown config key 'strategy.bogus' for strategy 'fedkseed'"]
    assert not (tmp_path / "log.sqlite").exists()  # nothing was written
    assert main(["simulate", str(tmp_path / "absent.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nseed = 1")
    assert main(["simulate", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_export_of_missing_run_fails_cleanly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fedseed.cli", "export", str(tmp_path), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "no round log" in proc.stderr


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "log.sqlite").write_bytes(b"a previous run")
    assert main(["simulate", SMOKE, "--out", str(tmp_path), "--quiet"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "log.sqlite").read_bytes() == b"a previous run"
