#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
"""Independent reference for fasa's byte-level BPE tokenizer (tests/model/tokenizer_test.cpp).

Builds a Hugging Face `tokenizers` Tokenizer from a GGUF file's vocabulary and merges (read with
the `gguf` package), with SmolLM2's pre-tokenizer, Sequence[Digits(individual_digits=True),
ByteLevel(add_prefix_space=False, use_regex=True)], and the ByteLevel decoder; control and
user-defined tokens become added tokens (control ones special). Nothing here shares code with the
C++ tokenizer: the regex, the byte mapping and the merge loop are all HF's Rust implementation.

    tokenizer_reference.py MODEL.gguf TEXTS.json [--vocab]
    tokenizer_reference.py --check        # exit 0 when gguf and tokenizers import

TEXTS.json is a JSON array of strings ("-" reads it from stdin). The output goes to stdout as
one JSON object:
  "ids"             [[int, ...], ...] the ids of each text, special tokens parsed
  "ids_no_special"  the same with special tokens tokenized as plain text
  "decoded"         [str, ...] HF's decoding of "ids"
  "vocab"           with --vocab: the GGUF's tokenizer keys as read by the gguf package
                    (tokens, token_types, merges, pre, bos, eos, unk, pad, add_bos), so a test
                    can build the C++ tokenizer without a C++ GGUF reader
"""
import json
import sys


def read_vocab(path):
    from gguf import GGUFReader

    reader = GGUFReader(path)

    def field(key, default=None):
        f = reader.fields.get(key)
        if f is None:
            if default is not None:
                return default
            raise SystemExit(f"{path}: GGUF key {key} is missing")
        return f.contents()

    model = field("tokenizer.ggml.model")
    if model != "gpt2":
        raise SystemExit(f"{path}: tokenizer.ggml.model is {model!r}; this reference is for 'gpt2'")
    vocab = {
        "tokens": field("tokenizer.ggml.tokens"),
        "token_types": field("tokenizer.ggml.token_type"),
        "merges": field("tokenizer.ggml.merges"),
        "pre": field("tokenizer.ggml.pre", "gpt2"),
        "add_bos": bool(field("tokenizer.ggml.add_bos_token", False)),
    }
    for name, key in [("bos", "bos_token_id"), ("eos", "eos_token_id"),
                      ("unk", "unknown_token_id"), ("pad", "padding_token_id")]:
        f = reader.fields.get("tokenizer.ggml." + key)
        vocab[name] = None if f is None else int(f.contents())
    return vocab


def build(vocab):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tokens, types, pre = vocab["tokens"], vocab["token_types"], vocab["pre"]
    merges = [tuple(m.split(" ", 1)) for m in vocab["merges"]]

    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges)
    tok = Tokenizer(bpe)
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre == "gpt2":
        tok.pre_tokenizer = byte_level
    else:
        raise SystemExit(f"tokenizer.ggml.pre is {pre!r}; this reference knows gpt2, smollm")
    tok.decoder = decoders.ByteLevel()
    # GGUF token types (llama.cpp): 3 control, 4 user-defined.
    added = [AddedToken(t, special=(ty == 3), normalized=False)
             for t, ty in zip(tokens, types) if ty in (3, 4)]
    tok.add_tokens(added)
    return tok


def main(argv):
    if argv[1:] == ["--check"]:
        import gguf  # noqa: F401
        import tokenizers  # noqa: F401
        return 0
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    vocab = read_vocab(argv[1])
    tok = build(vocab)
    src = sys.stdin if argv[2] == "-" else open(argv[2], encoding="utf-8")
    with src:
        texts = json.load(src)
    out = {}
    out["ids"] = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
    tok.encode_special_tokens = True  # special tokens' text is plain text
    out["ids_no_special"] = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
    out["decoded"] = [tok.decode(i, skip_special_tokens=False) for i in out["ids"]]
    if "--vocab" in argv[3:]:
        out["vocab"] = vocab
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
