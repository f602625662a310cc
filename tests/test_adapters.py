"""LoRA adapters ([adapter]): FedIT averages them with first-order steps, a zeroth-order strategy perturbs them
only; the base stays frozen, every party starts from the same adapter, bytes are the adapter's, and an export is a
plain checkpoint with the adapter merged in."""

import numpy as np
import pytest
import torch

from fedseed.adapters import AdapterSection, attach
from fedseed.api import simulate
from fedseed.config import ConfigError, apply_overrides, build_config, load_config, load_document
from fedseed.federation import build_federation
from fedseed.models import tiny_llama
from fedseed.replay import export_checkpoint, materialize_round
from fedseed.roundlog import RoundLog

FEDIT = {"strategy.lr": 0.05, "strategy.local_steps": 2, "adapter.kind": "lora", "adapter.rank": 4, "run.rounds": 2,
         "federation.num_clients": 4, "federation.clients_per_round": 2}


def fedit_doc() -> dict:
    """The smoke run's tables with FedIT as the strategy (its [strategy] keys are FedAvg's)."""
    doc = load_document("simulations/smoke.toml")
    doc["strategy"] = {"name": "fedit", "lr": 0.05, "local_steps": 2}
    return doc


def overrides(settings: dict) -> list[str]:
    return [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in settings.items()]


def test_an_adapted_model_starts_equal_to_its_base_and_the_same_on_every_party():
    base = tiny_llama().model
    ids = torch.arange(12).reshape(1, 12)
    with torch.no_grad():
        before = base(input_ids=ids).logits
    cfg = AdapterSection(kind="lora", rank=4)
    a, b = attach(tiny_llama().model, cfg, 7), attach(tiny_llama().model, cfg, 7)
    with torch.no_grad():
        assert torch.equal(a(input_ids=ids).logits, before)  # B starts at zero
    lora = {n: p for n, p in a.named_parameters() if "lora_" in n}
    assert lora and all(torch.equal(p, dict(b.named_parameters())[n]) for n, p in lora.items())
    other = dict(attach(tiny_llama().model, cfg, 8).named_parameters())
    assert any(not torch.equal(p, other[n]) for n, p in lora.items() if "lora_A" in n)  # drawn from the run seed


def test_fedit_trains_the_adapter_only_and_moves_the_adapters_bytes(tmp_path):
    doc = fedit_doc()
    apply_overrides(doc, overrides(FEDIT))
    fed = build_federation(build_config(doc))
    names = [s.name for s in fed.state.layout.slots]
    assert len(names) == 2 * 2 * 2 and all(".lora_A." in n or ".lora_B." in n for n in names)  # q, v; 2 layers
    frozen = {n: p.detach().clone() for n, p in fed.lm.model.named_parameters() if "lora_" not in n}
    history = simulate(config=fedit_doc(), settings=FEDIT | {"run.out": str(tmp_path / "run")})
    assert history.summary.strategy == "fedit"
    adapter_bytes = 4 * fed.state.layout.size  # one fp32 delta per adapter element, each way
    for rec in history.records[1:]:  # record 0 is the zero-shot evaluation
        assert rec.clients * adapter_bytes <= rec.bytes_up < rec.clients * (adapter_bytes + 256)
        assert rec.bytes_down >= rec.clients * adapter_bytes
    log = RoundLog.open_existing(str(tmp_path / "run"))
    lm, state = materialize_round(log, 2)  # replays to the logged checksum
    log.close()
    assert state.checksum() == history.summary.final_checksum != fed.state.checksum()  # it trained
    with state.resident():
        for n, p in lm.model.named_parameters():
            if n in frozen:
                assert torch.equal(p.detach(), frozen[n]), n  # the base did not move


def test_an_exported_adapted_run_is_a_plain_checkpoint_with_the_adapter_merged(tmp_path):
    history = simulate(config=fedit_doc(), settings=FEDIT | {"run.out": str(tmp_path / "run")})
    out = export_checkpoint(str(tmp_path / "run"), None, str(tmp_path / "export"))
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert not any("lora" in n for n, _ in plain.named_parameters())
    log = RoundLog.open_existing(str(tmp_path / "run"))
    lm, state = materialize_round(log, 2)
    log.close()
    assert state.checksum() == history.summary.final_checksum
    ids = torch.arange(16).reshape(2, 8)
    with torch.no_grad(), state.resident():
        adapted = lm.model(input_ids=ids).logits
    with torch.no_grad():
        merged = plain(input_ids=ids).logits
    assert torch.allclose(adapted, merged, atol=1e-5)


def test_zeroth_order_on_the_adapter_subspace_is_exact_and_leaves_the_base(tmp_path):
    settings = {"adapter.kind": "lora", "adapter.rank": 4, "run.rounds": 2}
    runs = [simulate(config="simulations/smoke.toml", settings=settings | {"run.out": str(tmp_path / str(i))})
            for i in range(2)]
    assert runs[0].summary.final_checksum == runs[1].summary.final_checksum
    fed = build_federation(load_config("simulations/smoke.toml", ['adapter.kind="lora"', "adapter.rank=4"]))
    assert fed.state.layout.num_trainable == 2 * (4 * 32 + 32 * 4 + 4 * 32 + 16 * 4)
    base = tiny_llama().model
    assert fed.state.layout.num_trainable < sum(p.numel() for p in base.parameters()) / 10
    assert np.isfinite(runs[0].summary.final["eval_loss"])


@pytest.mark.parametrize("settings, message", [
    ({"strategy.name": "fedavg", "adapter.kind": "lora"}, "FedAvg over LoRA adapters is FedIT"),
    ({"adapter.kind": "lora", "model.trainable": ["norm"]}, "leave model.trainable empty"),
    ({"adapter.kind": "lora", "adapter.rank": 0}, "'adapter.rank' must be >= 1"),
    ({"adapter.kind": "lora", "adapter.alpha": -1.0}, "'adapter.alpha' must be > 0"),
    ({"adapter.kind": "dora"}, "'adapter.kind' must be one of none, lora"),
    ({"adapter.kind": "lora", "adapter.targets": []}, "'adapter.targets' must name at least one module"),
])
def test_bad_adapter_settings_are_refused_naming_the_key(settings, message):
    doc = fedit_doc()  # FedIT's [strategy] keys are FedAvg's
    apply_overrides(doc, overrides(settings))
    with pytest.raises(ConfigError, match=message):
        build_config(doc)


def test_fedit_without_an_adapter_is_refused_saying_what_to_add():
    with pytest.raises(ConfigError, match='fedit trains LoRA adapters: add an .adapter. table with kind = "lora"'):
        build_config(fedit_doc())


def test_an_adapter_target_the_model_lacks_is_refused_listing_its_linear_layers():
    with pytest.raises(ValueError, match="no module named qkv_proj .*its linear layers: .*q_proj"):
        attach(tiny_llama().model, AdapterSection(kind="lora", targets=["qkv_proj"]), 0)
