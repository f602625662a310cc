"""Every party on CUDA: the compact state bit-identical to the CPU's, and a CPU coordinator with a CUDA client
ending a run on one checksum. Skipped where no CUDA device is visible."""

import json

import numpy as np
import pytest
import torch
from federation import LiveFederation
from inprocess import BUILDING

from fedseed.compact import CompactState
from fedseed.config import ConfigError, load_config
from fedseed.directions import DirectionEngine
from fedseed.layout import build_layout, model_checksum
from fedseed.models import tiny_llama
from fedseed.strategies.base import GlobalUpdate


def needs_cuda(test):
    return pytest.mark.gpu(pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")(test))


def compact_on(device: str, backend: str = "compiled") -> CompactState:
    with BUILDING:
        model = tiny_llama().model
    layout = build_layout(model, None, model_checksum(model))
    model.to(device)
    return CompactState(model, layout, DirectionEngine(backend))


def test_cuda_is_refused_clearly_where_there_is_none():
    if torch.cuda.is_available():
        pytest.skip("this process sees a CUDA device")
    with pytest.raises(ConfigError, match="model.device.*no CUDA device is visible"):
        load_config("simulations/smoke.toml", ["model.device=cuda"])
    with pytest.raises(ConfigError, match="model.device.*'cpu', 'cuda' or 'cuda:N'"):
        load_config("simulations/smoke.toml", ["model.device=tpu"])


@needs_cuda
@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_compact_state_on_cuda_is_bit_identical_to_cpu(backend):
    rng = np.random.default_rng(0)
    u = GlobalUpdate(1, "rademacher", rng.integers(0, 2**62, 16).astype(np.int64),
                     (rng.standard_normal(16) * 1e-3).astype(np.float32))
    states = [compact_on("cpu", "eager"), compact_on("cuda", backend)]
    for st in states:
        st.apply_rounds([u])
        st.step(5, 3e-4, "rademacher")
        st.perturb(9, 1e-3, "rademacher")
    cpu, gpu = states
    assert cpu.checksum() == gpu.checksum()
    size = cpu.layout.size
    assert torch.equal(cpu.weights(0, size, cpu.perturbation), gpu.weights(0, size, gpu.perturbation).cpu())
    for st in states:
        st.restore()
    assert cpu.checksum() == gpu.checksum()


@needs_cuda
@pytest.mark.federation
def test_cpu_coordinator_and_cuda_client_end_on_one_checksum(tmp_path):
    live = LiveFederation("simulations/loopback.toml", ["run.rounds=3"], tmp_path)
    with open(live.client_tomls[0], "a") as f:
        f.write('device = "cuda"\ncompute_dtype = "bfloat16"\n')
    try:
        live.start_server()
        for i in range(live.n):
            live.start_client(i)
        summary = live.finish()
        assert live.client_summary(0)["final_checksum"] == summary["final_checksum"]
        assert all(live.client_summary(i)["final_checksum"] == summary["final_checksum"] for i in range(live.n))
    finally:
        live.stop()


def test_a_client_without_the_runs_device_is_told_to_set_its_own():
    if torch.cuda.is_available():
        pytest.skip("this process sees a CUDA device")
    from fedseed.client.config import ClientSection
    from fedseed.client.edge import run_config_here
    from fedseed.config import load_document

    doc = load_document("simulations/smoke.toml", [])
    doc.setdefault("model", {})["device"] = "cuda"
    with pytest.raises(ConfigError, match=r"run's model.device is 'cuda' but no CUDA.*set client.device"):
        run_config_here(json.loads(json.dumps(doc)), ClientSection())
    cfg = run_config_here(json.loads(json.dumps(doc)), ClientSection(device="cpu", compute_dtype="bfloat16"))
    assert (cfg.model.device, cfg.model.compute_dtype) == ("cpu", "bfloat16")
