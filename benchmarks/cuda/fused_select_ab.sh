#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# A/B of split_options::fused_select on the GPU machine: FASA-C with TopK-I and FAC as four
# kernels (topk_filter, topk_finish, attend_split, merge_splits; --split-fused-select 0) against
# one kernel per selection unit (select_attend; 1), at Llama-3.1-8B attention shapes, each
# against the dense decode measured in the same run. Prints one line per case with both times;
# the auto rule's limits (fused_max_rows, fused_max_keep) come from it.
# Usage: bash benchmarks/cuda/fused_select_ab.sh [contexts] [batches] [budgets]
# Binaries: $FASA_DEVICE_BIN or .device/bin (benchmarks/cuda/stage.sh); results in $OUT or
# benchmarks/results/cuda/fused-select.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out="${OUT:-benchmarks/results/cuda/fused-select}"
contexts="${1:-4096,8192,16384,32768,65536}"
batches="${2:-1,4,8}"
budgets="${3:-256,1024}"
bin="${FASA_DEVICE_BIN:-.device/bin}"
mkdir -p "$out"
echo "binaries built from $(cat "$bin/BUILD" 2>/dev/null || echo unknown)" | tee "$out/ab.txt"
for f in 0 1; do
  cmd=("$bin/fasa-bench" --backend cuda --heads 32 --kv-heads 8 --head-dim 128 --n-tip 16
       --granularity kv_head,query_head --contexts "$contexts" --batches "$batches"
       --budgets "$budgets" --reps 20 --split-fused-select "$f" --csv "$out/fused$f.csv")
  echo "+ ${cmd[*]}" | tee -a "$out/ab.txt"
  "${cmd[@]}" >"$out/fused$f.txt" 2>&1 || { tail -20 "$out/fused$f.txt"; exit 1; }
done
python3 - "$out/fused0.csv" "$out/fused1.csv" <<'EOF' | tee -a "$out/ab.txt"
import csv, sys
rows = [{(r["context"], r["batch"], r["granularity"], r["n_fac"]): r for r in csv.DictReader(open(p))}
        for p in sys.argv[1:]]
print(f"{'context':>7} {'batch':>5} {'mode':>10} {'n_fac':>5} {'dense_ms':>9} {'4 kernels':>9} "
      f"{'1 kernel':>9} {'speedup 4':>9} {'speedup 1':>9} {'1 vs 4':>7}")
for key, a in rows[0].items():
    b = rows[1][key]
    d, f0, f1 = float(a["dense_ms"]), float(a["fasa_ms"]), float(b["fasa_ms"])
    print(f"{key[0]:>7} {key[1]:>5} {key[2]:>10} {key[3]:>5} {d:9.4f} {f0:9.4f} {f1:9.4f} "
          f"{d / f0:9.2f} {d / f1:9.2f} {f0 / f1:7.2f}")
EOF
