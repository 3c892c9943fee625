#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
"""PyTorch peers of `fasa-bench --backend cuda`, on the same tensors.

For every case that fasa-bench wrote to --dump (cases.jsonl), this regenerates the cache and the
queries from the same counter-based hash (fasa/backends/cuda/kernels/prepare.cuh: hashed_uniform),
then times, with CUDA events and the L2 flushed before each run:
  - dense decode with torch.nn.functional.scaled_dot_product_attention (enable_gqa=True);
  - FASA the way the paper's code runs it in PyTorch: the dominant key dims kept as their own
    cache (the released DynamicCache layout, per query head under query_head granularity), a
    matmul for the TIP scores, torch.topk, a gather of the selected K/V rows, then SDPA; eager,
    and replayed as a CUDA graph where capture works.
It checks fasa's outputs against these: dense against SDPA; FASA-C's kept tokens as a tie-aware
set against the fp32 TIP scores (every kept token scores at least the k-th best less a rounding
slack, every token clearly above it is kept), and its output against attention over those same
tokens in fp32. (Comparing outputs alone would flag near-tie swaps: with random data one swapped
token out of 2048 moves the tiny averaged output by ~1e-2 of its size.)
Writes one CSV row per case with the ratios, and prints a table.
"""

import argparse
import csv
import json
import os
import statistics
import sys

import numpy as np
import torch
import torch.nn.functional as F

MASK = 0xFFFFFFFF


def hash32_int(x: int) -> int:
    x &= MASK
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK
    x ^= x >> 16
    return x


def hash32(x: torch.Tensor) -> torch.Tensor:
    # int64 tensor of uint32 values; the products wrap modulo 2^64, the mask keeps the low 32 bits
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK
    x = x ^ (x >> 16)
    return x


def hashed_uniform(seed: int, plane: int, index: torch.Tensor) -> torch.Tensor:
    h = hash32_int((plane + seed * 0x9E3779B9) & MASK)
    x = hash32(index ^ h)
    return (x >> 8).to(torch.float32) * (1.0 / 8388608.0) - 1.0


KEY, VALUE, QUERY = 0, 1, 2


def plane(which, b, h, batch, heads):
    return ((which * batch + b) * heads + h) & MASK


def make_cache(which, c, dtype, dev):
    B, H, t, d = c["batch"], c["kv_heads"], c["context"], c["head_dim"]
    out = torch.empty(B, H, t, d, dtype=dtype, device=dev)
    idx = torch.arange(t * d, device=dev, dtype=torch.int64)
    for b in range(B):
        for h in range(H):
            out[b, h] = hashed_uniform(c["seed"], plane(which, b, h, B, H), idx).view(t, d).to(dtype)
    return out


def make_queries(c, dtype, dev):
    B, H, d = c["batch"], c["heads"], c["head_dim"]
    idx = torch.arange(d, device=dev, dtype=torch.int64)
    q = torch.empty(B, H, d, dtype=dtype, device=dev)
    for b in range(B):
        for h in range(H):
            q[b, h] = hashed_uniform(c["seed"], plane(QUERY, b, h, B, H), idx).to(dtype)
    return q


def timed(fn, reps, warmup, flush):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for i in range(warmup + reps):
        flush.zero_()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(start.elapsed_time(end))
    return statistics.median(times)


def graphed(fn):
    """fn replayed as a CUDA graph, or None where capture fails."""
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        return g.replay
    except Exception as e:  # noqa: BLE001 - report and go on without the graph
        print(f"# graph capture failed: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def rel_err(x, ref):
    x, ref = x.float(), ref.float()
    if torch.isnan(x).any() or torch.isnan(ref).any():
        return float("inf")
    return ((x - ref).abs().max() / ref.abs().max()).item()


class FasaPipeline:
    """The paper's PyTorch FASA decode step over one cache: TIP matmul, topk, gather, SDPA."""

    def __init__(self, c, K, V, q):
        B, Hq, Hkv, d = c["batch"], c["heads"], c["kv_heads"], c["head_dim"]
        self.c, self.K, self.V = c, K, V
        self.per_query = c["granularity"] == "query_head"
        dims = torch.tensor(c["dims"], device=K.device, dtype=torch.long)  # [units, 2*n_tip]
        units = dims.shape[0]
        kv_of = torch.arange(units, device=K.device) // (Hq // Hkv) if self.per_query else torch.arange(units, device=K.device)
        # the dominant-dim key cache, [B, units, t, 2*n_tip] (built at append time in the paper)
        self.K_dom = torch.stack([K[:, int(kv_of[u])][..., dims[u]] for u in range(units)], dim=1).contiguous()
        self.q4 = q.view(B, Hq, 1, d)
        # the group's queries are summed in fp32 (as fasa does); the timed pipeline then scores
        # in the model dtype, the check in fp32
        qs = q.float() if self.per_query else q.float().view(B, Hkv, Hq // Hkv, d).sum(2)
        self.q_dom32 = torch.stack([qs[:, u, dims[u]] for u in range(units)], dim=1).unsqueeze(2)
        self.q_dom = self.q_dom32.to(q.dtype)
        self.b_idx = torch.arange(B, device=K.device).view(B, 1, 1)
        self.h_idx = kv_of.view(1, units, 1)
        self.n_fac = min(c["n_fac"], c["context"])

    def check_selection(self, sel):
        """sel: [B, units, n_fac] fasa's kept tokens. Returns (valid, why, output over sel)."""
        scores = (self.q_dom32 @ self.K_dom.float().transpose(-1, -2)).squeeze(2)  # [B, u, t]
        kth = scores.topk(self.n_fac, dim=-1).values[..., -1:]
        slack = 1e-5 * scores.abs().amax() + 1e-6
        kept = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, sel, True)
        if int(kept.sum()) != sel.numel():
            return False, "duplicate tokens", None
        if bool((scores.gather(-1, sel) < kth - slack).any()):
            return False, "a kept token scores below the k-th best", None
        if bool(((scores > kth + slack) & ~kept).any()):
            return False, "a token above the k-th best was left out", None
        Ks = self.K[self.b_idx, self.h_idx, sel].float()
        Vs = self.V[self.b_idx, self.h_idx, sel].float()
        out = F.scaled_dot_product_attention(self.q4.float(), Ks, Vs, enable_gqa=not self.per_query)
        return True, "", out

    def step(self, fp32_scores=False):
        if fp32_scores:
            scores = self.q_dom32 @ self.K_dom.float().transpose(-1, -2)
        else:
            scores = self.q_dom @ self.K_dom.transpose(-1, -2)  # [B, units, 1, t]
        idx = scores.topk(self.n_fac, dim=-1).indices.squeeze(2)  # [B, units, n_fac]
        Ks = self.K[self.b_idx, self.h_idx, idx]  # [B, units, n_fac, d]
        Vs = self.V[self.b_idx, self.h_idx, idx]
        if fp32_scores:
            return F.scaled_dot_product_attention(self.q4.float(), Ks.float(), Vs.float(), enable_gqa=not self.per_query)
        return F.scaled_dot_product_attention(self.q4, Ks, Vs, enable_gqa=not self.per_query)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", required=True, help="the --dump-dir of fasa-bench --backend cuda")
    ap.add_argument("--csv", required=True, help="output CSV, one row per case")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--check-tol", type=float, default=1e-2, help="relative error bar for equal outputs")
    args = ap.parse_args()
    dev = torch.device("cuda")
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    with open(os.path.join(args.dump, "cases.jsonl")) as f:
        cases = [json.loads(line) for line in f if line.strip()]
    rows, failed = [], 0
    cache_key, K, V, q, dense_ref = None, None, None, None, {}
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    for c in cases:
        key = (c["context"], c["batch"])
        dtype = torch.bfloat16 if c["dtype"] == "bf16" else torch.float16
        if key != cache_key:
            K = V = None
            torch.cuda.empty_cache()
            K, V = make_cache(KEY, c, dtype, dev), make_cache(VALUE, c, dtype, dev)
            q = make_queries(c, dtype, dev)
            cache_key = key
            q4 = q.view(c["batch"], c["heads"], 1, c["head_dim"])
            sdpa = lambda: F.scaled_dot_product_attention(q4, K, V, enable_gqa=True)  # noqa: E731
            ours = torch.from_numpy(np.fromfile(os.path.join(args.dump, c["dense_file"]), dtype=np.float32)).to(dev)
            dense_err = rel_err(ours.view(-1), sdpa().view(-1))
            g = graphed(sdpa)
            sdpa_ms = timed(g or sdpa, args.reps, args.warmup, flush)
            dense_ref = {"sdpa_ms": sdpa_ms, "dense_err": dense_err, "sdpa_graphed": g is not None}
        pipe = FasaPipeline(c, K, V, q)
        ours = torch.from_numpy(np.fromfile(os.path.join(args.dump, c["fasa_file"]), dtype=np.float32)).to(dev)
        sel = torch.from_numpy(np.fromfile(os.path.join(args.dump, c["sel_file"]), dtype=np.int32))
        sel = sel.to(dev).long().view(c["batch"], -1, min(c["n_fac"], c["context"]))
        sel_ok, why, on_sel = pipe.check_selection(sel)
        fasa_err = rel_err(ours.view(-1), on_sel.view(-1)) if sel_ok else float("inf")
        fp32_pipe_err = rel_err(ours.view(-1), pipe.step(fp32_scores=True).view(-1))
        fasa_bf16_err = rel_err(ours.view(-1), pipe.step().view(-1))
        eager_ms = timed(pipe.step, args.reps, args.warmup, flush)
        g = graphed(pipe.step)
        graph_ms = timed(g, args.reps, args.warmup, flush) if g else float("nan")
        best_torch = min(eager_ms, graph_ms) if g else eager_ms
        ok = dense_ref["dense_err"] < args.check_tol and fasa_err < args.check_tol
        failed += not ok
        r = {
            "context": c["context"], "batch": c["batch"], "granularity": c["granularity"], "n_fac": c["n_fac"],
            "dense_ms": c["dense_ms"], "sdpa_ms": dense_ref["sdpa_ms"], "sdpa_over_dense": dense_ref["sdpa_ms"] / c["dense_ms"],
            "fasa_ms": c["fasa_ms"], "torch_fasa_eager_ms": eager_ms, "torch_fasa_graph_ms": graph_ms,
            "torch_fasa_over_fasa": best_torch / c["fasa_ms"],
            "dense_rel_err_vs_sdpa": dense_ref["dense_err"], "fasa_selection_valid": sel_ok,
            "fasa_rel_err_on_its_selection": fasa_err, "fasa_rel_err_vs_torch_fp32_scores": fp32_pipe_err,
            "fasa_rel_err_vs_torch_bf16_scores": fasa_bf16_err, "outputs_equal": ok,
        }
        rows.append(r)
        print(f"ctx {c['context']:6d} batch {c['batch']:2d} {c['granularity']:10s} N_fac {c['n_fac']:4d} | "
              f"dense {c['dense_ms']:.4f} vs SDPA {dense_ref['sdpa_ms']:.4f} ms ({r['sdpa_over_dense']:.2f}x) | "
              f"FASA-C {c['fasa_ms']:.4f} vs torch {eager_ms:.4f} eager / {graph_ms:.4f} graph ms "
              f"({r['torch_fasa_over_fasa']:.1f}x) | err dense {dense_ref['dense_err']:.1e} fasa {fasa_err:.1e}"
              f" (vs torch's own top-k {fp32_pipe_err:.1e}){'' if ok else '  MISMATCH ' + why}", flush=True)
        del pipe
    with open(args.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    print(f"# wrote {args.csv}; {len(rows) - failed} of {len(rows)} cases with equal outputs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
