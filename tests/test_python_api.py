"""The Python surface: the README's example runs as written and gives the run a TOML file would give; objects
(model, rows, strategy instance, loss, callbacks) reach the run; bad combinations are refused clearly."""

import json
import pathlib
import re

import pytest
import torch

import fedseed
from fedseed.api import build_run_config
from fedseed.simulations.engine import simulate as engine_simulate

README = pathlib.Path(__file__).parent.parent / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## From Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102 -- the README's own code
    history = namespace["history"]
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed[:3]] == ["round 1", "round 2", "round 3"]
    assert [r.round for r in history.records] == [0, 1, 2, 3] and history.summary.rounds == 3
    assert set(history.final) == {"eval_loss", "eval_accuracy"}
    assert history.records[-1].checksum == history.summary.final_checksum
    assert all(r.clients == 2 and r.bytes_up > 0 for r in history.records[1:])
    summary = json.loads((tmp_path / "runs/python-example/summary.json").read_text())
    assert summary["final_checksum"] == history.summary.final_checksum and summary["data"] == "custom"


def test_a_config_file_keeps_its_model_unless_one_is_given():
    cfg = build_run_config("simulations/quickstart.toml", {"run.rounds": 1}, None, None, None, None, None)
    assert cfg.model.name == "smollm2-135m-instruct" and cfg.run.rounds == 1


def test_objects_give_the_run_their_config_gives(tmp_path):
    """A strategy instance and a built-in source by name equal the same settings written as tables."""
    settings = {"run.rounds": 2, "federation.num_clients": 4, "federation.clients_per_round": 2,
                "data.eval_size": 16, "model.backend": "eager", "model.max_length": 64}
    strategy = fedseed.FedKSeedPro(lr=1e-3, num_seeds=64, local_steps=3)
    seen = []
    history = fedseed.simulate(data="reviews-mini", strategy=strategy, settings=settings, out=str(tmp_path / "api"),
                               callbacks=[seen.append])
    assert [r.round for r in seen] == [1, 2] and seen[-1] == history.records[-1]
    tables = {"data": {"source": "reviews-mini"},
              "strategy": {"name": "fedkseed-pro", "lr": 1e-3, "num_seeds": 64, "local_steps": 3}}
    cfg = build_run_config(tables, settings, "tiny-random-llama", None, None, None, str(tmp_path / "toml"))
    assert engine_simulate(cfg, progress=False)["final_checksum"] == history.summary.final_checksum


def test_a_custom_loss_trains_and_scores_the_run(tmp_path):
    calls = []

    def loss(model, batch):  # the answer tokens' cross-entropy, written by the user
        calls.append(batch.size)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.labels[:, 1:].reshape(-1),
                                                 ignore_index=-100)

    rows = [{"prompt": f"{a} plus {b} is", "completion": f" {a + b}"} for a in range(10) for b in range(6)]
    history = fedseed.simulate(data=rows, loss=loss, out=str(tmp_path / "run"),
                               strategy=fedseed.FedKSeed(lr=1e-3, num_seeds=64, local_steps=2),
                               settings={"run.rounds": 1, "federation.num_clients": 2,
                                         "federation.clients_per_round": 2, "data.eval_size": 8,
                                         "data.partition": "iid", "model.backend": "eager"})
    assert len(calls) >= 2 * 2 * 2  # two clients, two steps, two forwards each (and the evaluations)
    assert history.records[1].clients == 2 and "eval_loss" in history.final


@pytest.mark.parametrize("kwargs, message", [
    ({"model": torch.nn.Linear(2, 2)}, "needs its tokenizer"),
    ({"data": [{"text": "x", "label": 0}], "label_words": [" no", " yes"],
      "settings": {"simulation.backend": "processes"}}, "inline backend only"),
    ({"settings": {"strategy.lr": "fast"}}, "strategy.lr"),
    ({"settings": {"rounds": 3}}, "settings keys are section.key"),
    ({"strategy": fedseed.FedKSeed(), "settings": {"strategy.lr": 1.0}}, "conflict with the strategy object"),
    ({"data": [{"text": "x", "label": "maybe"}], "label_words": [" no", " yes"]}, "row 0"),
])
def test_bad_objects_are_refused_before_anything_is_written(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        fedseed.simulate(out=str(tmp_path / "run"), **kwargs)
    assert not (tmp_path / "run").exists()


def test_strategies_take_their_settings_as_keywords():
    s = fedseed.Ferret(num_bases=64, server_lr=0.5)
    assert (s.cfg.name, s.cfg.num_bases, s.cfg.server_lr) == ("ferret", 64, 0.5)
    with pytest.raises(ValueError, match="unknown config key 'strategy.num_sedes'"):
        fedseed.FedKSeed(num_sedes=3)
    with pytest.raises(ValueError, match="'strategy.lr' must be float, got str"):
        fedseed.FedKSeed(lr="0.1")
    with pytest.raises(ValueError, match="'strategy.local_steps' must be int, got float"):
        fedseed.FedKSeed(local_steps=2.5)
    with pytest.raises(TypeError, match="must be a Strategy object"):
        fedseed.simulate(strategy="fedkseed")
    with pytest.raises(RuntimeError, match="not set up for a run"):
        fedseed.FedKSeed().seed_pool()


def test_an_instance_of_a_strategy_defined_here_runs(tmp_path):
    from walkthrough_strategy import FreshSeedZO

    try:
        history = fedseed.simulate(strategy=FreshSeedZO(lr=1e-3, local_steps=2, clip=50.0), data="reviews-mini",
                                   out=str(tmp_path / "run"),
                                   settings={"run.rounds": 1, "federation.num_clients": 2,
                                             "federation.clients_per_round": 2, "data.eval_size": 8,
                                             "model.backend": "eager"})
    finally:
        fedseed.strategies.REGISTRY.pop("fresh-seed-zo", None)
    assert history.summary.strategy == "fresh-seed-zo" and history.records[1].clients == 2
    assert history.records[1].checksum != history.records[0].checksum
