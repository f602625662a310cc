"""One open round at the coordinator: its draw, deadline and the results accepted so far; and the refusal a
request gets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import grpc

from fedseed.secagg.protocol import SecAggServer
from fedseed.strategies.base import ClientResult, RoundPlan


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
    first_opened: float = 0.0  # when the round's first attempt opened (wall-clock seconds)
    # a private round: its secure aggregation, when the current stage began, the protocol's bytes (each stage
    # message and reply counted once per client), and why the attempt failed
    secagg: SecAggServer | None = None
    stage_since: float = 0.0
    private_up: int = 0
    private_down: int = 0
    counted: set = field(default_factory=set)
    failed: str = ""
    left_out: set = field(default_factory=set)  # clients whose stage message came too late for this attempt

    def complete(self) -> bool:
        return len(self.results) == len(self.plan.clients)  # results only ever hold planned clients

    def sorted_results(self) -> list[ClientResult]:
        return [self.results[c] for c in sorted(self.results)]

    def persisted(self) -> dict:
        """What a restarted coordinator needs to reopen this round as it was (the plan follows from it)."""
        return {"round": self.plan.round, "attempt": self.attempt, "clients": self.plan.clients,
                "drawn_before": self.drawn_before, "first_opened": self.first_opened}


def now_ms() -> int:
    return int(time.time() * 1000)
