"""model.compute_dtype: bf16 and fp16 forwards over an exact state, and half-precision checkpoints loaded as
stored."""

import numpy as np
import pytest
import torch
from inprocess import BUILDING
from test_state_formats import SMOKE, load_config

from fedseed.compact import CompactState
from fedseed.config import ConfigError
from fedseed.directions import DirectionEngine
from fedseed.federation import autocast_dtype
from fedseed.layout import build_layout, model_checksum
from fedseed.models import load_model, tiny_llama
from fedseed.replay import materialize_round
from fedseed.roundlog import RoundLog
from fedseed.state import build_state
from fedseed.strategies.base import GlobalUpdate
from fedseed.zo import spsa_scalar
from simulations.engine import simulate

IDS = torch.tensor([[5, 17, 42, 99, 3, 64, 7, 12]])


@pytest.fixture(scope="module")
def bf16_folder(tmp_path_factory):
    """A checkpoint folder holding the tiny Llama's weights in bf16, as most current checkpoints are stored."""
    folder = tmp_path_factory.mktemp("bf16")
    with BUILDING:
        lm = tiny_llama()
    lm.model.to(torch.bfloat16).save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


def compact(model, dtype, trainable=None):
    layout = build_layout(model, trainable, model_checksum(model))
    return CompactState(model, layout, DirectionEngine("compiled"), dtype)


def update(seed=0, n=12):
    rng = np.random.default_rng(seed)
    return GlobalUpdate(1, "rademacher", rng.integers(0, 2**62, n).astype(np.int64),
                        (rng.standard_normal(n) * 1e-3).astype(np.float32))


def test_a_bf16_checkpoint_loads_as_stored_and_its_base_is_exact(bf16_folder):
    stored = load_model(str(bf16_folder), as_stored=True).model
    widened = load_model(str(bf16_folder)).model
    assert {p.dtype for p in stored.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in widened.parameters()} == {torch.float32}
    a, b = compact(stored, torch.bfloat16), compact(widened, torch.float32)
    assert a.base_rounded == 0 and a.checksum() == b.checksum()  # the same integers from either dtype
    u = update()
    for st in (a, b):
        st.apply_rounds([u])
    assert a.checksum() == b.checksum()  # what the parties compare does not depend on the forward's dtype
    with torch.inference_mode():
        got, want = a.model(IDS).logits, b.model(IDS).logits
    assert got.dtype == torch.bfloat16
    assert float((got.float() - want).abs().max()) < 0.05 * float(want.abs().max())


def test_a_run_state_keeps_frozen_bf16_weights_as_stored_under_autocast(bf16_folder):
    model = load_model(str(bf16_folder), as_stored=True).model
    reference = load_model(str(bf16_folder)).model
    layout = build_layout(model, [r"\.mlp\."], model_checksum(model))
    state = build_state("compact", model, layout, DirectionEngine("compiled"), torch.bfloat16)
    frozen = [p for n, p in model.named_parameters() if ".mlp." not in n]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen) and state.base_rounded == 0
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = model(IDS).logits.float(), reference(IDS).logits.float()
    torch.testing.assert_close(got, want, atol=2e-2, rtol=2e-2)  # bf16 rounding apart, the fp32 model's forward


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_forwards_compute_in_their_dtype_with_frozen_weights_cast(dtype):
    with BUILDING:
        model = tiny_llama().model
    state = compact(model, dtype, trainable=[r"\.mlp\."])
    frozen = [p for n, p in model.named_parameters() if ".mlp." not in n]
    assert frozen and all(p.dtype == dtype for p in frozen)
    assert all(b.dtype == torch.float32 for b in model.buffers())  # rotary frequencies stay as the model made them
    with torch.inference_mode():
        base = float(model(IDS).logits.float().square().mean())
    r = spsa_scalar(state, 3, 1e-2, "rademacher", lambda: model(IDS).logits.float().square().mean(), lr=1e-3)
    assert not r.skipped and np.isfinite(r.g) and abs(r.loss - base) < 0.1 * abs(base) + 1e-3
    state.restore()
    with torch.inference_mode():
        assert float(model(IDS).logits.float().square().mean()) == base  # local work discarded exactly


@pytest.mark.parametrize("state", ["compact", "wide"])
def test_a_run_in_bf16_trains_and_records_its_dtype(state, tmp_path):
    cfg = load_config(SMOKE, [f"model.state={state}", "model.compute_dtype=bfloat16", "run.rounds=2",
                              "eval.every=1"])
    assert autocast_dtype(cfg) == torch.bfloat16
    summary = simulate(cfg, str(tmp_path), progress=False)
    with RoundLog.open_existing(tmp_path) as log:
        assert log.meta("config")["model"]["compute_dtype"] == "bfloat16"
        _, replayed = materialize_round(log, 2)  # replay (in fp32) reaches the logged checksum
        assert replayed.checksum() == log.checksum(2)
    assert np.isfinite(summary["final"]["eval_loss"]) and summary["compute_dtype"] == "bfloat16"


def test_an_unknown_compute_dtype_is_refused():
    with pytest.raises(ConfigError, match="model.compute_dtype.*float32, bfloat16, float16, auto"):
        load_config(SMOKE, ["model.compute_dtype=int8"])


def test_auto_is_bf16_only_where_the_cpu_multiplies_bf16_natively(monkeypatch):
    from fedseed import precision

    for flags, expected in ((frozenset({"avx2", "avx512f"}), torch.float32),
                            (frozenset({"avx512_bf16"}), torch.bfloat16), (frozenset({"amx_bf16"}), torch.bfloat16)):
        monkeypatch.setattr(precision, "_cpu_flags", lambda f=flags: f)
        assert precision.forward_dtype("auto", "cpu") == expected
    assert precision.forward_dtype("float16", "cpu") == torch.float16
    with pytest.raises(ValueError, match="unknown compute dtype 'int8'"):
        precision.forward_dtype("int8", "cpu")


def test_every_configurable_dtype_name_resolves():
    from fedseed import precision
    from fedseed.config import COMPUTE_DTYPES

    resolved = {precision.forward_dtype(n, "cpu") for n in COMPUTE_DTYPES}
    assert resolved <= set(precision.NAMES.values())
    assert set(COMPUTE_DTYPES) == set(precision.NAMES) | {"auto"}
