"""Rows (JSON objects or Python mappings) into examples: the one parser behind JSONL files and `dataset_from`.

A row is either {"prompt", "completion"} (generation) or {"text", "label"} (classification over label words),
each with an optional "task"; other keys are ignored. See docs/data.md.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fedseed.data.examples import Dataset, Example

FORMATS = "expected keys 'prompt' and 'completion', or 'text' and 'label'"


def check_label_words(label_words: Sequence[str] | None) -> list[str]:
    """The label words as a list; refuses a bare string (a common slip for a one-word list), blanks, repeats."""
    if label_words is None:
        return []
    if isinstance(label_words, str):
        raise ValueError(f"label_words must be a list of strings, got the string {label_words!r}")
    words = list(label_words)
    for w in words:
        if not isinstance(w, str) or not w:
            raise ValueError(f"label words must be non-empty strings, got {w!r}")
    repeated = sorted({w for w in words if words.count(w) > 1})
    if repeated:
        raise ValueError(f"label words repeat {repeated}; each class needs its own word")
    return words


def _text(row: Mapping, key: str, where: str) -> str:
    value = row[key]
    if isinstance(value, str):
        return value
    # a bare number (e.g. an arithmetic answer) reads as its decimal text; anything else is a mistake
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{where}: {key!r} must be a string, got {type(value).__name__} {value!r}")


def _label(row: Mapping, label_words: list[str], where: str) -> int:
    label = row["label"]
    if isinstance(label, str) and label in label_words:
        return label_words.index(label)
    if isinstance(label, numbers.Integral) and not isinstance(label, bool) and 0 <= int(label) < len(label_words):
        return int(label)
    hint = ""
    if isinstance(label, str):
        near = [w for w in label_words if w.strip() == label.strip()]
        if near:  # the usual cause: the label word's leading space left out (or added)
            hint = f" (words match exactly, spaces included: did you mean {near[0]!r}?)"
    raise ValueError(f"{where}: 'label' must be an index (0 to {len(label_words) - 1}) or one of the label words "
                     f"{label_words}, got {label!r}{hint}")


def parse_row(row: Any, label_words: list[str], where: str) -> Example:
    if not isinstance(row, Mapping):
        raise ValueError(f"{where}: a row must be a mapping ({FORMATS}), got {type(row).__name__}")
    task = _text(row, "task", where) if "task" in row else ""
    if "prompt" in row and "completion" in row:
        return Example(_text(row, "prompt", where), completion=_text(row, "completion", where), task=task)
    if "text" in row and "label" in row:
        if not label_words:
            raise ValueError(f"{where}: text/label rows need label words (label_words=, or data.label_words "
                             "in a config)")
        return Example(_text(row, "text", where), label=_label(row, label_words, where), task=task)
    raise ValueError(f"{where}: {FORMATS}, got keys {sorted(map(str, row))}")


def parse_rows(rows: Iterable[tuple[str, Any]], label_words: list[str], source: str) -> list[Example]:
    """Examples from (location, row) pairs; the location ("row 3", "file.jsonl:4") prefixes every error."""
    examples: list[Example] = []
    first = ""
    for where, row in rows:
        ex = parse_row(row, label_words, where)
        if not examples:
            first = where
        elif (ex.label is None) != (examples[0].label is None):
            kinds = ("prompt/completion", "text/label") if ex.label is None else ("text/label", "prompt/completion")
            raise ValueError(f"{where}: a {kinds[0]} row among {kinds[1]} rows (as {first}); one dataset holds "
                             "one kind")
        examples.append(ex)
    if not examples:
        raise ValueError(f"{source}: no examples")
    return examples


def make_dataset(name: str, examples: list[Example], label_words: list[str]) -> Dataset:
    # label words only mean something to classification; generation data ignores them, as a config may set both
    return Dataset(name, examples, list(label_words) if examples[0].label is not None else [])
