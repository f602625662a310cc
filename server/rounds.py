"""One round at the coordinator: who takes part, what they submitted, and the work that closes it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
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
    drawn_before: list[int] = field(default_factory=list)  # clients of this round's earlier attempts

    def persisted(self) -> dict:
        """What a restarted coordinator needs to reopen this round as it was (the plan follows from it)."""
        return {"round": self.plan.round, "attempt": self.attempt, "clients": self.plan.clients,
                "drawn_before": self.drawn_before}

    def why_dropped(self, refused: dict[int, str]) -> dict[str, str]:
        """Each client drawn for the round (in any attempt) that is not in it, with the reason."""
        out = {}
        for c in sorted(set(self.plan.clients) | set(self.drawn_before)):
            if c in self.results:
                continue
            if c in refused:
                out[str(c)] = refused[c]
            elif c in self.plan.clients:
                out[str(c)] = "no result by the deadline"
            else:
                out[str(c)] = "no result before the round was drawn again (short of its quorum)"
        return out

    def complete(self) -> bool:
        return len(self.results) == len(self.plan.clients)  # results only ever hold planned clients

    def sorted_results(self) -> list[ClientResult]:
        return [self.results[c] for c in sorted(self.results)]


def check_result(strategy: Strategy, plan: RoundPlan, result: ClientResult, max_samples: int,
                 aggregate_checked: Callable[[RoundPlan, list[ClientResult]], object]) -> None:
    """Refuse (INVALID_ARGUMENT) a result the strategy could not aggregate: wrong size or count, non-finite or
    out-of-range scalars, impossible counts (the strategy's own check_result), or an update of its own whose
    per-seed coefficients or growth of the state no party could apply."""
    bad = grpc.StatusCode.INVALID_ARGUMENT
    if not 1 <= result.num_samples <= max_samples:
        raise Refusal(bad, f"num_samples must be in [1, {max_samples}], got {result.num_samples}")
    if math.isinf(result.train_loss):
        raise Refusal(bad, "train_loss must be finite (or NaN when every step was skipped)")
    if not 0 <= result.skipped_steps <= strategy.steps_per_round():
        raise Refusal(bad, f"skipped_steps {result.skipped_steps} exceeds the steps of a round")
    try:
        strategy.check_result(plan, result)
        aggregate_checked(plan, [result])
    except (ValueError, OverflowError) as e:
        raise Refusal(bad, f"payload refused: {e}") from None


def now_ms() -> int:
    return int(time.time() * 1000)
