"""Every wrong key, type or list element of a run, server or client file stops the command with exit status 2 and
one line naming the key, before anything is written; the schema command describes the same files."""

import json
import pathlib
import subprocess
import sys

import pytest

from fedseed.cli import main
from fedseed.config import build_config, load_config, to_dict
from fedseed.config_models import ConfigError

SMOKE = pathlib.Path("simulations/smoke.toml").resolve()
RECIPES = pathlib.Path("simulations/experiments").resolve()
ONEBYTE = RECIPES / "sentiment_onebyte.toml"  # a base without FedKSeed's keys
STRATEGIES = ["fedkseed", "fedkseed-pro", "ferret", "onebyte", "fedavg", "fedit", "mezo", "fzoo"]


def config_file(tmp_path: pathlib.Path, body: str, name: str = "run.toml", base: pathlib.Path = SMOKE) -> str:
    """A file over a base run (`extends`), so only the keys under test differ."""
    path = tmp_path / name
    path.write_text(f'extends = "{base.as_posix()}"\n{body}\n', encoding="utf-8")
    return str(path)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert captured.out == ""
    return lines[0]


@pytest.mark.parametrize("body,line", [
    ("[model]\ntrainable = [1]", "config key 'model.trainable[0]' must be str, got int (1)"),
    ("[model]\ntrainable = ['norm', 2.5]", "config key 'model.trainable[1]' must be str, got float (2.5)"),
    ("[data]\ntasks = [3]", "config key 'data.tasks[0]' must be str, got int (3)"),
    ("[data]\nlabel_words = 'positive'", "config key 'data.label_words' must be list, got str ('positive')"),
    ("[strategy]\nlr = 'fast'", "config key 'strategy.lr' must be float, got str ('fast')"),
    ("[strategy]\nnum_bases = 8", "unknown config key 'strategy.num_bases' for strategy 'fedkseed'"),
    ("[strategy]\nname = 'ferret'\nnum_seeds = 8", "unknown config key 'strategy.num_seeds' for strategy 'ferret'"),
    ("[strategy]\nname = 'onebyte'", "unknown config key 'strategy.num_seeds' for strategy 'onebyte'"),  # from smoke
    ("[strategy]\nname = 7", "config key 'strategy.name' must be str, got int (7)"),
    ("[run]\nrounds = 2.0", "config key 'run.rounds' must be int, got float (2.0)"),
    ("[simulation]\ntensorboard = 1", "config key 'simulation.tensorboard' must be bool, got int (1)"),
    ("[federation]\nnum_clients = '6'", "config key 'federation.num_clients' must be int, got str ('6')"),
    ("[eval]\nevery = 2\nbogus = true", "unknown config key 'eval.bogus'"),
    ("model = 'tiny'", "config key 'model' must be a table"),
    ("[nosuch]\nkey = 1", "unknown config section 'nosuch'"),
])
def test_simulate_refuses_wrong_key_type_or_element(tmp_path, capsys, body, line):
    refused_with(tmp_path, capsys, [config_file(tmp_path, body)], line)


def refused_with(tmp_path, capsys, args: list[str], line: str) -> None:
    """`fedseed simulate ARGS` exits 2 with exactly this one error line and writes nothing."""
    out = tmp_path / "out"
    assert main(["simulate", *args, "--out", str(out), "--quiet"]) == 2
    assert one_error_line(capsys) == f"fedseed: error: {line}"
    assert not out.exists()


@pytest.mark.parametrize("body,line", [
    ("[strategy]\njoin = [[0, 'x']]", "config key 'strategy.join[0][1]' must be int, got str ('x')"),
    ("[strategy]\nleave = [3]", "config key 'strategy.leave[0]' must be list, got int (3)"),
    ("[strategy]\nsamples_per_step = 1.0", "config key 'strategy.samples_per_step' must be int, got float (1.0)"),
])
def test_nested_lists_of_the_chosen_strategy_are_checked(tmp_path, capsys, body, line):
    refused_with(tmp_path, capsys, [config_file(tmp_path, body, base=ONEBYTE)], line)


@pytest.mark.parametrize("override,line", [
    ("model.trainable=[1]", "config key 'model.trainable[0]' must be str, got int (1)"),
    ("data.tasks=[3]", "config key 'data.tasks[0]' must be str, got int (3)"),
    ('strategy.lr="fast"', "config key 'strategy.lr' must be float, got str ('fast')"),
])
def test_set_overrides_are_checked_the_same_way(tmp_path, capsys, override, line):
    refused_with(tmp_path, capsys, [str(SMOKE), "--set", override], line)


def test_several_errors_still_give_one_line_naming_the_first(tmp_path, capsys):
    body = "[model]\ntrainable = [1]\n[strategy]\nlr = 'fast'\nbogus = 1"
    assert main(["simulate", config_file(tmp_path, body), "--out", str(tmp_path / "out")]) == 2
    assert one_error_line(capsys) == ("fedseed: error: config key 'model.trainable[0]' must be str, got int (1) "
                                      "(and 2 more config errors)")


def test_an_int_is_taken_for_a_float_and_good_values_pass(tmp_path):
    cfg = load_config(config_file(tmp_path, "[strategy]\nlr = 1\n[data]\nalpha = 2"), ["federation.dropout=0"])
    assert cfg.strategy.lr == 1.0 and isinstance(cfg.strategy.lr, float)
    assert isinstance(cfg.data.alpha, float) and isinstance(cfg.federation.dropout, float)
    assert cfg.strategy.num_seeds == 256  # the rest comes from the base file
    cfg = load_config(str(ONEBYTE), ["model.trainable=['norm', 'q_proj']", "strategy.join=[[1, 2]]"])
    assert cfg.model.trainable == ["norm", "q_proj"] and cfg.strategy.join == [[1, 2]]
    assert type(cfg.strategy).__name__ == "OneByteConfig"


def test_range_checks_still_run_after_the_type_checks():
    with pytest.raises(ConfigError, match="strategy.num_seeds must be in"):
        load_config(str(SMOKE), ["strategy.num_seeds=0"])
    with pytest.raises(ConfigError, match="'run.rounds' must be >= 1"):
        load_config(str(SMOKE), ["run.rounds=0"])


@pytest.mark.parametrize("name", STRATEGIES)
def test_the_json_a_coordinator_sends_builds_the_same_config(name):
    """Edge clients rebuild the run from the coordinator's JSON, so it must pass the strict checks unchanged."""
    cfg = load_config(str(RECIPES / f"sentiment_{name.replace('-', '_')}.toml"))
    assert cfg.strategy.name == name
    assert build_config(json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_server_file_with_a_wrong_type_is_refused(tmp_path, capsys):
    out = tmp_path / "server-out"
    body = f'[server]\nout = "{out.as_posix()}"\nround_deadline_s = "soon"'
    assert main(["server", "--config", config_file(tmp_path, body, "server.toml")]) == 2
    assert one_error_line(capsys) == ("fedseed: error: config key 'server.round_deadline_s' must be float, "
                                      "got str ('soon')")
    assert main(["server", "--config", config_file(tmp_path, "[server]\nport = 7000", "server2.toml")]) == 2
    assert one_error_line(capsys) == "fedseed: error: unknown config key 'server.port'"
    assert not out.exists()


def test_client_file_with_a_wrong_type_is_refused(tmp_path, capsys):
    path = tmp_path / "client.toml"
    out = tmp_path / "client-out"
    path.write_text(f'[client]\nid = "c0"\nkey = "c0.ed25519"\nout = "{out.as_posix()}"\nwait_ms = "long"\n')
    assert main(["client", "--server", "127.0.0.1:1", "--config", str(path)]) == 2
    assert one_error_line(capsys) == "fedseed: error: config key 'client.wait_ms' must be int, got str ('long')"
    path.write_text('[client]\nid = "c0"\nthreads = 1.5\n')
    assert main(["client", "--server", "127.0.0.1:1", "--config", str(path)]) == 2
    assert one_error_line(capsys) == "fedseed: error: config key 'client.threads' must be int, got float (1.5)"
    path.write_text('[client]\nid = "c0"\nkey = "c0.ed25519"\ndevice = "tpu"\n')
    assert main(["client", "--server", "127.0.0.1:1", "--config", str(path)]) == 2
    assert one_error_line(capsys) == ("fedseed: error: config key 'client.device' must be 'cpu', 'cuda' or "
                                      "'cuda:N', not 'tpu'")
    path.write_text('[client]\nid = "c0"\nkey = "c0.ed25519"\ncompute_dtype = "int8"\n')
    assert main(["client", "--server", "127.0.0.1:1", "--config", str(path)]) == 2
    assert one_error_line(capsys) == ("fedseed: error: config key 'client.compute_dtype' must be one of float32, "
                                      "bfloat16, float16, auto")
    assert not out.exists()


def test_schema_command_prints_the_run_schema_with_the_strategy_union():
    proc = subprocess.run([sys.executable, "-m", "fedseed.cli", "config-schema"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    assert set(schema["properties"]) == {"run", "model", "adapter", "data", "federation", "strategy", "eval",
                                         "robust", "privacy", "simulation", "server", "client",
                                         "extends"}  # a run file may hold each
    assert schema["additionalProperties"] is False
    strategy = schema["properties"]["strategy"]
    assert strategy["discriminator"]["propertyName"] == "name"
    assert list(strategy["discriminator"]["mapping"]) == STRATEGIES
    for name, ref in strategy["discriminator"]["mapping"].items():
        table = schema["$defs"][ref.rsplit("/", 1)[1]]
        assert table["properties"]["name"]["const"] == name and table["additionalProperties"] is False
    assert "num_seeds" in schema["$defs"]["strategy_fedkseed"]["properties"]
    assert "num_seeds" not in schema["$defs"]["strategy_ferret"]["properties"]
    assert schema["$defs"]["model"]["properties"]["trainable"]["items"] == {"type": "string"}
    assert schema["$defs"]["strategy_onebyte"]["properties"]["join"]["items"]["items"] == {"type": "integer"}


def test_schema_command_covers_server_and_client_files(capsys):
    assert main(["config-schema", "server"]) == 0
    server = json.loads(capsys.readouterr().out)
    assert "server" in server["properties"] and "strategy" in server["properties"]
    assert server["$defs"]["server"]["properties"]["round_deadline_s"]["type"] == "number"
    assert main(["config-schema", "client"]) == 0
    client = json.loads(capsys.readouterr().out)
    assert set(client["properties"]) == {"client"}
    assert client["$defs"]["client"]["properties"]["wait_ms"]["type"] == "integer"


def test_the_config_knows_every_built_in_model_by_name():
    from fedseed import models
    from fedseed.config import BUILTIN_MODELS

    assert set(BUILTIN_MODELS) == {models.TINY, models.SMOLLM2, models.GEMMA3}
    with pytest.raises(ConfigError, match="neither a built-in model .*gemma3-270m.* nor a folder"):
        load_config(str(SMOKE), ['model.name="gemma-9000"'])
