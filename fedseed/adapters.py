"""LoRA adapters through `peft`: the [adapter] table makes the trainable set a low-rank adapter on chosen modules,
the base frozen. FedIT averages the adapters with first-order local steps; a zeroth-order strategy perturbs the
adapter weights only (a subspace of the full parameters).

Every party attaches the same adapter: the initial A matrices are drawn from the run seed (B starts at zero, so the
adapted model starts equal to the base), and the layout then names the adapter tensors only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from fedseed.seeds import derive_seed

KINDS = ("none", "lora")
ADAPTER_PATTERNS = [r"\.lora_[AB]\."]  # the trainable set of an adapted model: its adapter weights
_INIT_KEY = 0x10A4  # names the draw of the adapters' initial weights


@dataclass
class AdapterSection:
    """The [adapter] table: none (full-parameter training) or lora."""

    kind: str = "none"
    rank: int = 8
    alpha: float = 16.0  # the adapter's output is scaled by alpha / rank
    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])  # module names (suffixes) adapted

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"config key 'adapter.kind' must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "none":
            return
        if self.rank < 1:
            raise ValueError(f"config key 'adapter.rank' must be >= 1, got {self.rank}")
        if not self.alpha > 0:
            raise ValueError(f"config key 'adapter.alpha' must be > 0, got {self.alpha}")
        if not self.targets:
            raise ValueError("config key 'adapter.targets' must name at least one module")


def attach(model: torch.nn.Module, cfg: AdapterSection, run_seed: int) -> torch.nn.Module:
    """The model with the configured adapter attached (itself when kind = none); its initial weights are a function
    of the run seed alone, so every party builds the same."""
    if cfg.kind == "none":
        return model
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in cfg.targets if t not in present]
    if missing:
        raise ValueError(f"config key 'adapter.targets': the model has no module named {', '.join(missing)} "
                         f"(its linear layers: {', '.join(sorted(_linear_names(model)))})")
    lora = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules=list(cfg.targets), lora_dropout=0.0,
                      bias="none")
    with torch.random.fork_rng(devices=[]):  # the global generator is left as it was
        torch.manual_seed(derive_seed(run_seed, _INIT_KEY))
        adapted = get_peft_model(model, lora)
    return adapted.eval()


def _linear_names(model: torch.nn.Module) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def adapted(model: torch.nn.Module, cfg: AdapterSection, trainable: list[str], run_seed: int,
            device: str) -> tuple[torch.nn.Module, list[str] | None]:
    """The model with its adapter attached (unless it comes adapted already) on `device`, and the layout's trainable
    patterns: the adapter weights of an adapted model, else model.trainable (None: all). Every party that builds a
    run's state (simulation, coordinator, client, replay) gets both from here."""
    if not hasattr(model, "peft_config"):
        model = attach(model, cfg, run_seed).to(device)
    return model, list(ADAPTER_PATTERNS) if cfg.kind != "none" else (list(trainable) or None)


def recorded(config: dict) -> AdapterSection:
    """The adapter of a run from its recorded config; a log written before adapters existed has none."""
    table = config.get("adapter") or {}
    return AdapterSection(**{k: v for k, v in table.items() if k in AdapterSection.__dataclass_fields__})


def merged(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model with its adapter folded into the weights it adapts (itself when it has none): what an
    exported checkpoint holds, so any Hugging Face loader reads it."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
