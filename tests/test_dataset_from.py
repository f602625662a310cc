"""dataset_from: JSONL paths, Python rows, Hugging Face-style datasets and Datasets, through one row parser."""

import json
import pathlib
import re

import numpy as np
import pytest

from fedseed.data import Dataset, Example, dataset_from
from fedseed.data.partition import partition
from fedseed.data.sources import load_dataset, load_jsonl

WORDS = [" no", " yes"]
ROWS = [{"text": "Is water wet? Answer:", "label": " yes"},
        {"text": "Is fire cold? Answer:", "label": 0, "task": "physics", "source": "ignored"},
        {"text": "Is ice hot? Answer:", "label": 1}]


class RowTable:
    """Behaves like a Hugging Face `datasets.Dataset` for our purposes: len, int/str indexing, iteration of dicts."""

    def __init__(self, columns: dict[str, list]) -> None:
        self.columns = columns
        self.column_names = list(columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, key):
        if isinstance(key, str):
            return self.columns[key]
        return {k: v[key] for k, v in self.columns.items()}

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def test_rows_parse_into_the_expected_examples():
    ds = dataset_from(ROWS, WORDS)
    assert ds.name == "custom" and ds.label_words == WORDS and ds.is_classification
    assert ds.examples == [Example("Is water wet? Answer:", label=1),
                           Example("Is fire cold? Answer:", label=0, task="physics"),
                           Example("Is ice hot? Answer:", label=1)]
    gen = dataset_from([{"prompt": "2+2=", "completion": 4, "task": "sums"}, {"prompt": "Hi", "completion": "Hello"}],
                       label_words=WORDS, name="chat")
    # text is kept verbatim (no cue added); a number reads as its text; label words mean nothing to generation
    assert gen.examples == [Example("2+2=", completion="4", task="sums"), Example("Hi", completion="Hello")]
    assert gen.name == "chat" and gen.label_words == [] and not gen.is_classification
    assert dataset_from(iter(ROWS), WORDS).examples == ds.examples  # any iterable, read once
    both = dataset_from([{"prompt": "p", "completion": "c", "text": "t", "label": 0}], WORDS)
    assert both.examples == [Example("p", completion="c")]  # prompt/completion wins over text/label


def test_jsonl_file_and_python_rows_give_the_same_dataset(tmp_path):
    f = tmp_path / "quiz.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in ROWS[:2]) + "\n\n" + json.dumps(ROWS[2]) + "\n")
    from_rows = dataset_from(ROWS, WORDS)
    for ds in (dataset_from(str(f), WORDS), dataset_from(f, WORDS), load_jsonl(str(f), WORDS),
               load_dataset("jsonl", str(f), WORDS)):
        assert ds.name == "quiz" and ds.examples == from_rows.examples and ds.label_words == from_rows.label_words
    assert dataset_from(pathlib.Path(f), WORDS, name="other").name == "other"


def test_hugging_face_style_dataset():
    table = RowTable({"text": [r["text"] for r in ROWS], "label": [1, 0, 1], "idx": [7, 8, 9]})
    ds = dataset_from(table, WORDS, name="hf")
    assert [e.label for e in ds.examples] == [1, 0, 1] and [e.prompt for e in ds.examples] == table["text"]
    labels = np.asarray([1, 0, 1])  # numpy integers (e.g. from pandas records) are indexes too
    assert dataset_from([{"text": "t", "label": labels[0]}], WORDS).examples[0].label == 1


def test_real_hugging_face_dataset():
    datasets = pytest.importorskip("datasets")
    hf = datasets.Dataset.from_list([{"text": r["text"], "label": r["label"]} for r in ROWS])
    assert dataset_from(hf, WORDS).examples == [Example(r["text"], label=e.label)
                                                 for r, e in zip(ROWS, dataset_from(ROWS, WORDS).examples)]


def test_a_dataset_is_returned_as_is():
    ds = Dataset("mine", [Example("a", label=0)], WORDS)
    assert dataset_from(ds) is ds and dataset_from(ds, WORDS) is ds
    with pytest.raises(ValueError, match="differ from the dataset's"):
        dataset_from(ds, [" nope", " yep"])


@pytest.mark.parametrize("rows, words, message", [
    ([ROWS[0], {"text": "x", "label": "maybe"}], WORDS,
     "row 1: 'label' must be an index (0 to 1) or one of the label words [' no', ' yes'], got 'maybe'"),
    ([{"text": "x", "label": "yes"}], WORDS, "got 'yes' (words match exactly, spaces included: did you mean ' yes'?)"),
    ([ROWS[0], ROWS[1], {"text": "x", "label": 2}], WORDS, "row 2: 'label' must be an index (0 to 1)"),
    ([{"text": "x", "label": -1}], WORDS, "row 0: 'label' must be an index"),
    ([{"text": "x", "label": True}], WORDS, "row 0: 'label' must be an index"),
    ([{"text": "x", "label": 1.0}], WORDS, "row 0: 'label' must be an index"),
    ([{"text": "x", "label": "1"}], WORDS, "row 0: 'label' must be an index"),
    ([{"prompt": None, "completion": "c"}], None, "row 0: 'prompt' must be a string, got NoneType None"),
    ([{"prompt": "p", "completion": ["c"]}], None, "row 0: 'completion' must be a string, got list"),
    ([ROWS[0], {"text": "x", "label": 0, "task": ["t"]}], WORDS, "row 1: 'task' must be a string"),
    ([{"question": "q", "answer": "a"}], None,
     "row 0: expected keys 'prompt' and 'completion', or 'text' and 'label', got keys ['answer', 'question']"),
    ([{"prompt": "p"}], None, "row 0: expected keys"),
    (["just text"], None, "row 0: a row must be a mapping"),
    ([{"text": "x", "label": 0}], None, "row 0: text/label rows need label words"),
    ([ROWS[0], {"prompt": "p", "completion": "c"}], WORDS,
     "row 1: a prompt/completion row among text/label rows (as row 0)"),
    ([], WORDS, "rows: no examples"),
])
def test_bad_rows_name_the_row_and_the_key(rows, words, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        dataset_from(rows, words)


def test_jsonl_errors_name_file_and_line(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps({"text": "x", "label": " maybe"}) + "\n")
    with pytest.raises(ValueError, match=r"d\.jsonl:3: 'label' must be an index .*got ' maybe'"):
        dataset_from(f, WORDS)
    f.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"d\.jsonl:1: a row must be a mapping"):
        dataset_from(f, WORDS)
    f.write_text("")
    with pytest.raises(ValueError, match="no examples"):
        dataset_from(f, WORDS)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dataset_from(tmp_path / "missing.jsonl")


def test_wrong_inputs_are_refused():
    with pytest.raises(TypeError, match="pass one split"):
        dataset_from({"train": ROWS})
    with pytest.raises(TypeError, match="got int"):
        dataset_from(3)
    with pytest.raises(ValueError, match="list of strings, got the string ' yes'"):
        dataset_from(ROWS, " yes")
    with pytest.raises(ValueError, match=r"label words repeat \[' yes'\]"):
        dataset_from(ROWS, [" yes", " yes"])
    with pytest.raises(ValueError, match="non-empty strings, got ''"):
        dataset_from(ROWS, [" no", ""])


def test_partitions_for_prompt_completion_rows():
    rows = [{"prompt": f"q{i}", "completion": "a", "task": f"t{i % 3}"} for i in range(12)]
    ds = dataset_from(rows)
    idx = np.arange(12)
    assert sorted(np.concatenate(partition(ds, idx, 4, "iid", 0.0, 0)).tolist()) == idx.tolist()
    shards = partition(ds, idx, 3, "task", 0.0, 0)
    assert [sorted({ds.examples[i].task for i in s}) for s in shards] == [["t0"], ["t1"], ["t2"]]
    # with more tasks than clients the extra tasks' examples are left out of training
    assert sum(len(s) for s in partition(ds, idx, 2, "task", 0.0, 0)) == 8
    with pytest.raises(ValueError, match="needs labelled"):
        partition(ds, idx, 2, "dirichlet", 0.5, 0)
    with pytest.raises(ValueError, match="needs >= 2 tasks, the data has 1"):
        partition(dataset_from([{"prompt": "p", "completion": "c"}] * 4), np.arange(4), 2, "task", 0.0, 0)
