"""The gRPC traffic a coordinator measures: serialized bytes per round and call, kept in the round's record
beside the bytes of the round's own messages (``RoundRecord.traffic``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Traffic:
    up: int = 0
    down: int = 0
    messages: int = 0
    by_method: dict = field(default_factory=dict)

    def add(self, method: str, up: int, down: int) -> None:
        self.up += up
        self.down += down
        self.messages += 1
        m = self.by_method.setdefault(method, [0, 0])
        m[0] += up
        m[1] += down

    def as_dict(self) -> dict:
        return asdict(self)
