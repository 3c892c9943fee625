#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
"""The markdown tables of docs/results.md's GPU section, from one run's bench.csv and peers.csv.
Usage: tables.py RESULTS_DIR (the folder holding bench.csv and peers.csv)"""

import csv
import os
import sys


def main():
    d = sys.argv[1]
    bench = list(csv.DictReader(open(os.path.join(d, "bench.csv"))))
    peers = {(r["context"], r["batch"], r["granularity"], r["n_fac"]): r
             for r in csv.DictReader(open(os.path.join(d, "peers.csv")))}
    row = {(r["context"], r["batch"], r["granularity"], r["n_fac"]): r for r in bench}
    contexts = sorted({int(r["context"]) for r in bench})
    batches = sorted({int(r["batch"]) for r in bench})
    k = lambda c, b, g="kv_head", n="256": (str(c), str(b), g, n)  # noqa: E731

    print(f"copy bandwidth {float(bench[0]['copy_gbs']):.0f} GB/s; {bench[0]['gpu']}\n")
    print("| context | " + " | ".join(f"batch {b}: ms | % of copy | SDPA / ours" for b in batches) + " |")
    print("|---|" + "---|---|---|" * len(batches))
    for c in contexts:
        cells = []
        for b in batches:
            r, p = row[k(c, b)], peers[k(c, b)]
            cells.append(f"{float(r['dense_ms']):.4f} | {100 * float(r['dense_fraction_of_copy']):.0f} % | "
                         f"{float(p['sdpa_over_dense']):.2f}")
        print(f"| {c // 1024}K | " + " | ".join(cells) + " |")

    print("\n| context | batch | kv_head: ms | speedup | of ceiling | query_head: ms | speedup | of ceiling | ceiling |")
    print("|---|---|---|---|---|---|---|---|---|")
    for b in batches:
        for c in contexts:
            if c < 8192 or (b > 1 and c < 32768 and not (b == 8 and c == 8192)):
                continue
            kv, qh = row[k(c, b)], row[k(c, b, "query_head")]
            print(f"| {c // 1024}K | {b} | {float(kv['fasa_ms']):.4f} | {float(kv['speedup']):.2f}x | "
                  f"{100 * float(kv['fraction_of_ceiling']):.0f} % | {float(qh['fasa_ms']):.4f} | "
                  f"{float(qh['speedup']):.2f}x | {100 * float(qh['fraction_of_ceiling']):.0f} % | "
                  f"{float(kv['ceiling']):.2f}x |")

    print("\nstages at 32K x 8, kv_head, N_fac 256 (eager):")
    r = row[k(32768, 8)]
    for f in ["prep_ms", "tip_ms", "filter_ms", "finish_ms", "fac_ms"]:
        print(f"  {f} {float(r[f]):.4f}")
    print(f"  slab GB/s {32768 * 8 * 8 * int(r['slab_width']) * 2 / float(r['tip_ms']) / 1e6:.0f}")

    print("\n| batch | mode | N_fac | FASA-C ms | torch eager ms | torch graph ms | faster than the better |")
    print("|---|---|---|---|---|---|---|")
    for b, g, n in [(1, "kv_head", "256"), (8, "kv_head", "256"), (8, "query_head", "256"),
                    (8, "query_head", "2048"), (32, "kv_head", "256"), (32, "query_head", "2048")]:
        p = peers.get(k(32768, b, g, n))
        if p:
            print(f"| {b} | {g} | {n} | {float(p['fasa_ms']):.4f} | {float(p['torch_fasa_eager_ms']):.3f} | "
                  f"{float(p['torch_fasa_graph_ms']):.3f} | {float(p['torch_fasa_over_fasa']):.1f}x "
                  f"({float(p['torch_fasa_eager_ms']) / float(p['fasa_ms']):.1f}x vs eager) |")

    print("\nbatch 1 speedups, 8K+:", ", ".join(
        f"{c // 1024}K {float(row[k(c, 1)]['speedup']):.2f}x/{float(row[k(c, 1, 'query_head')]['speedup']):.2f}x"
        for c in contexts if c >= 8192))
    print("outputs equal:", sum(p["outputs_equal"] == "True" for p in peers.values()), "of", len(peers))


if __name__ == "__main__":
    main()
