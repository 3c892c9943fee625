#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
"""Speedup of FASA-C over fasa's dense decode vs context, one line per (N_fac, batch), from
the CSV of `fasa-bench --backend cuda`, with the cost-model ceiling as a wide pale line; one
panel per granularity (kv_head, query_head). Writes an SVG. Usage: plot.py BENCH_CSV OUT_SVG"""

import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def panel(ax, rows, gran):
    lines, ceiling = defaultdict(list), defaultdict(dict)
    for r in rows:
        if r["granularity"] != gran:
            continue
        key = (int(r["n_fac"]), int(r["batch"]))
        lines[key].append((int(r["context"]), float(r["speedup"])))
        ceiling[int(r["n_fac"])][int(r["context"])] = float(r["ceiling"])
    colors = {256: "tab:blue", 1024: "tab:orange", 2048: "tab:green"}
    styles = {1: ":", 8: "-", 16: "-.", 32: "--"}
    for (n_fac, batch), pts in sorted(lines.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], styles.get(batch, "-"), marker="o",
                ms=3, color=colors.get(n_fac), label=f"N_fac {n_fac}, batch {batch}")
    for n_fac, c in sorted(ceiling.items()):
        xs = sorted(c)
        ax.plot(xs, [c[x] for x in xs], color=colors.get(n_fac), alpha=0.3, lw=5,
                label=f"ceiling, N_fac {n_fac}")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("speedup over fasa dense decode")
    ax.set_title(f"{gran} selection")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(src)))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    for ax, gran in zip(axes, ["kv_head", "query_head"]):
        panel(ax, rows, gran)
    fig.suptitle("FASA-C vs dense decode on the H200: Llama-3.1-8B attention (32/8 heads, d 128), "
                 "bf16, N_tip 16")
    fig.tight_layout()
    fig.savefig(dst)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
