"""`reviews-mini`: a small movie-review sentiment set written for fedseed and generated in code.

It ships inside the package so the smoke run and a bare `pip install fedseed` need no data package. Every review
names one aspect of a film and one verdict on it, with a closing remark that agrees with the verdict; the
examples come out in one fixed order (partitions and held-out splits shuffle with the run's seed).
"""

from __future__ import annotations

from itertools import product

from fedseed.data.examples import Dataset, Example

ASPECTS = ("the acting", "the plot", "the script", "the soundtrack", "the ending", "the dialogue", "the cast",
           "the pacing", "the camera work", "the story", "the humor", "the direction")
VERDICTS = {  # label 1: positive, 0: negative (the indices of the sentiment label words)
    1: ("was wonderful", "was brilliant", "felt fresh", "was moving", "was a delight", "kept me hooked",
        "was superb", "was charming"),
    0: ("was dull", "was awful", "felt lazy", "was a mess", "dragged on", "was boring", "was clumsy",
        "fell flat"),
}
CLOSINGS = {
    1: ("", " and I would watch it again.", " and the whole room loved it."),
    0: ("", " and I want my money back.", " and half the room walked out."),
}


def reviews() -> list[tuple[str, int]]:
    """All (review, label) pairs: 12 aspects x 8 verdicts x 3 closings for each label, alternating labels."""
    rows = []
    for aspect, k, closing in product(ASPECTS, range(len(VERDICTS[1])), range(len(CLOSINGS[1]))):
        for label in (1, 0):
            text = f"{aspect} {VERDICTS[label][k]}{CLOSINGS[label][closing]}"
            rows.append((text[0].upper() + text[1:] + ("" if text.endswith(".") else "."), label))
    return rows


def words() -> set[str]:
    """The words the reviews use (the tiny model's tokenizer gives each one a token)."""
    text = " ".join(t for t, _ in reviews())
    return {w.strip(".,") for w in text.split()}


def load_reviews_mini(template: str, label_words: list[str]) -> Dataset:
    examples = [Example(template.format(text=text), label=label) for text, label in reviews()]
    return Dataset("reviews-mini", examples, list(label_words))
