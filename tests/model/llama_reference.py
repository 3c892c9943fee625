#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
"""An independent Llama forward pass in NumPy, the reference for fasa's C++ forward pass.

It reads a GGUF file with the `gguf` package (its own parser and dequantisation), runs each
prompt (a JSON list of lists of token ids on stdin) through the model in float64, and prints
the logits of each prompt's last token as a JSON list of lists on stdout. Nothing here shares
code with fasa.

usage: llama_reference.py MODEL.gguf < prompts.json
"""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def field(reader, key):
    f = reader.fields[key]
    value = f.parts[f.data[0]]
    return value.tobytes().decode() if f.types[0].name == "STRING" else value[0]


def main():
    path = sys.argv[1]
    prompts = json.load(sys.stdin)
    r = GGUFReader(path)
    arch = field(r, "general.architecture")
    n_layers = int(field(r, f"{arch}.block_count"))
    n_heads = int(field(r, f"{arch}.attention.head_count"))
    n_kv = int(field(r, f"{arch}.attention.head_count_kv"))
    dim = int(field(r, f"{arch}.embedding_length"))
    eps = float(field(r, f"{arch}.attention.layer_norm_rms_epsilon"))
    theta = float(field(r, f"{arch}.rope.freq_base"))
    hd = dim // n_heads
    tensors = {t.name: t for t in r.tensors}

    def weight(name):
        t = tensors[name]
        # GGUF lists dims fastest first; numpy wants [rows, row length]
        w = dequantize(t.data, t.tensor_type)
        return np.asarray(w, dtype=np.float64).reshape([int(d) for d in reversed(t.shape)])

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def rope(x, pos):
        # x: [T, heads, hd]; the GGUF converter permutes q/k rows so that RoPE rotates adjacent
        # pairs (2i, 2i+1) with frequency theta^(-2i/hd)
        inv = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        ang = pos[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * c - b * s
        out[..., 1::2] = a * s + b * c
        return out

    cache = {}

    def w(name):
        if name not in cache:
            cache[name] = weight(name)
        return cache[name]

    results = [forward(w, [int(i) for i in ids], n_layers, n_heads, n_kv, hd, rms, rope,
                       "output.weight" in tensors) for ids in prompts]
    json.dump(results, sys.stdout)


def forward(weight, ids, n_layers, n_heads, n_kv, hd, rms, rope, separate_output):
    emb = weight("token_embd.weight")
    x = emb[ids]
    t = len(ids)
    pos = np.arange(t, dtype=np.float64)
    mask = np.triu(np.full((t, t), -np.inf), 1)
    for l in range(n_layers):
        p = f"blk.{l}."
        h = rms(x, weight(p + "attn_norm.weight"))
        q = rope((h @ weight(p + "attn_q.weight").T).reshape(t, n_heads, hd), pos)
        k = rope((h @ weight(p + "attn_k.weight").T).reshape(t, n_kv, hd), pos)
        v = (h @ weight(p + "attn_v.weight").T).reshape(t, n_kv, hd)
        rep = n_heads // n_kv
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        att = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
        att = np.exp(att - att.max(axis=-1, keepdims=True))
        att /= att.sum(axis=-1, keepdims=True)
        o = np.einsum("hts,shd->thd", att, v).reshape(t, n_heads * hd)
        x = x + o @ weight(p + "attn_output.weight").T
        h = rms(x, weight(p + "ffn_norm.weight"))
        g = h @ weight(p + "ffn_gate.weight").T
        u = h @ weight(p + "ffn_up.weight").T
        x = x + (g / (1 + np.exp(-g)) * u) @ weight(p + "ffn_down.weight").T
    out = weight("output.weight") if separate_output else emb
    logits = rms(x[-1], weight("output_norm.weight")) @ out.T
    return [float(z) for z in logits]


if __name__ == "__main__":
    main()
