"""The two kinds of examples fedseed trains on: label-word classification and prompt/completion."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    prompt: str
    label: int | None = None  # classification: index into the task's label words
    completion: str | None = None  # generation: the target answer
    task: str = ""


@dataclass
class Dataset:
    name: str
    examples: list[Example]
    label_words: list[str] = field(default_factory=list)  # empty for generation tasks

    @property
    def is_classification(self) -> bool:
        return bool(self.label_words)

    def labels(self) -> list[int]:
        return [-1 if e.label is None else e.label for e in self.examples]

    def tasks(self) -> list[str]:
        return [e.task for e in self.examples]
