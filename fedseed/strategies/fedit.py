"""FedIT: federated instruction tuning with LoRA adapters averaged by FedAvg (Zhang et al., "Towards Building the
Federated GPT: Federated Instruction Tuning", ICASSP 2024), the PEFT baseline that Flower's LLM examples and
OpenFedLLM ship. Clients take first-order SGD steps on the adapter weights only ([adapter] table, base frozen);
each round moves the adapter tensors' dense deltas up and their weighted mean down. Simulation only, like FedAvg.
"""

from __future__ import annotations

from fedseed.strategies.fedavg import FedAvg


class FedIT(FedAvg):
    name = "fedit"
    needs_adapter = True
