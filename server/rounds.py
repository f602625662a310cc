"""One round at the coordinator: who takes part, what they submitted, and the work that closes it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import grpc

from fedseed.strategies.base import ClientResult, RoundPlan, Strategy


class Refusal(Exception):
    """A request refused with a gRPC status; nothing was changed."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class OpenRound:
    plan: RoundPlan
    attempt: int
    opened: float
    deadline: float  # wall-clock seconds
    start_checksum: str  # hex; "" while unknown (a coordinator without the model learns it from clients)
    results: dict[int, ClientResult] = field(default_factory=dict)

    def complete(self) -> bool:
        return len(self.results) == len(self.plan.clients)  # results only ever hold planned clients

    def sorted_results(self) -> list[ClientResult]:
        return [self.results[c] for c in sorted(self.results)]


def check_result(strategy: Strategy, plan: RoundPlan, result: ClientResult, max_samples: int) -> None:
    """Refuse (INVALID_ARGUMENT) a result the strategy could not aggregate: wrong size or count, non-finite or
    out-of-range scalars, impossible counts (the strategy's own check_result)."""
    bad = grpc.StatusCode.INVALID_ARGUMENT
    if not 1 <= result.num_samples <= max_samples:
        raise Refusal(bad, f"num_samples must be in [1, {max_samples}], got {result.num_samples}")
    if math.isinf(result.train_loss):
        raise Refusal(bad, "train_loss must be finite (or NaN when every step was skipped)")
    if not 0 <= result.skipped_steps <= strategy.steps_per_round():
        raise Refusal(bad, f"skipped_steps {result.skipped_steps} exceeds the steps of a round")
    try:
        strategy.check_result(plan, result)
    except (ValueError, OverflowError) as e:
        raise Refusal(bad, f"payload refused: {e}") from None


def now_ms() -> int:
    return int(time.time() * 1000)
