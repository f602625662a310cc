"""The tiny random model's tokenizer: byte-level BPE built in code, so the model needs no files or packages.

Any text encodes (every byte has a token). Each word of the built-in review set, the sentiment template and the
built-in label words, with its leading space, is one token, reached through merges that grow the word one byte
at a time; so label words keep distinct first tokens and the smoke run's prompts stay short.
"""

from __future__ import annotations

import re

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"


def builtin_words() -> list[str]:
    from fedseed.data import reviews, sources

    text = " ".join([sources.SENTIMENT_TEMPLATE, *sources.SENTIMENT_WORDS, *sources.TREC_WORDS,
                     *sources.SMS_WORDS, *reviews.words()])
    return sorted(set(re.findall(r"[A-Za-z]+", text)))  # sorted: the same token ids on every machine


def byte_bpe(words: list[str]) -> PreTrainedTokenizerFast:
    """Byte-level BPE whose vocabulary is the 256 byte symbols, EOS, and every prefix of ' ' + word."""
    pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    vocab = {EOS: 0}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    merges = []
    for word in words:
        # each piece starts with the space symbol and only grows at its end, so no two merges compete
        for piece, _ in pre.pre_tokenize_str(" " + word):
            for i in range(2, len(piece) + 1):
                if piece[:i] not in vocab:
                    vocab[piece[:i]] = len(vocab)
                    merges.append((piece[:i - 1], piece[i - 1]))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=EOS)


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    return byte_bpe(builtin_words())
