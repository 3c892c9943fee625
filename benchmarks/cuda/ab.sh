#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# A/B of one fasa-bench option on the GPU machine: the same cases (Llama-3.1-8B attention shapes,
# 32/8 heads, d 128, bf16, N_tip 16, both GQA modes) once per value of the option, each FASA-C
# time next to the dense decode measured in the same run, then one table with every value's
# step time, TIP stage time (eager) and speedup over dense. Usage:
#   bash benchmarks/cuda/ab.sh OPTION VALUES [contexts] [batches] [budgets] [reps]
# e.g. bash benchmarks/cuda/ab.sh --split-tip-bulk 0,2,3,4
# Binaries: $FASA_DEVICE_BIN or .device/bin (benchmarks/cuda/stage.sh); results in $OUT or
# benchmarks/results/cuda/ab: one CSV and one log per value, ab.txt with the commands and table.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
option="$1" values="$2"
contexts="${3:-8192,32768,65536,131072}"
batches="${4:-1,8,32}"
budgets="${5:-256}"
reps="${6:-20}"
bin="${FASA_DEVICE_BIN:-.device/bin}"
out="${OUT:-benchmarks/results/cuda/ab}"
mkdir -p "$out"
name="${option#--}"
echo "binaries built from $(cat "$bin/BUILD" 2>/dev/null || echo unknown)" | tee "$out/ab.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader |
  tee -a "$out/ab.txt"
csvs=()
for v in ${values//,/ }; do
  csv="$out/$name-$v.csv"
  cmd=("$bin/fasa-bench" --backend cuda --heads 32 --kv-heads 8 --head-dim 128 --n-tip 16
       --granularity kv_head,query_head --contexts "$contexts" --batches "$batches"
       --budgets "$budgets" --reps "$reps" "$option" "$v" --csv "$csv")
  echo "+ ${cmd[*]}" | sed "s|$out/||g" | tee -a "$out/ab.txt"
  "${cmd[@]}" >"$out/$name-$v.txt" 2>&1 || { tail -20 "$out/$name-$v.txt"; exit 1; }
  csvs+=("$csv")
done
python3 - "$name" "${csvs[@]}" <<'EOF' | tee -a "$out/ab.txt"
import csv, os, sys
name, paths = sys.argv[1], sys.argv[2:]
runs = [{(r["context"], r["batch"], r["granularity"], r["n_fac"]): r for r in csv.DictReader(open(p))}
        for p in paths]
labels = [os.path.basename(p)[len(name) + 1:-4] for p in paths]
head = f"{'context':>7} {'batch':>5} {'mode':>10} {'n_fac':>5} {'dense_ms':>9}"
for l in labels:
    head += f" {'fasa ' + l:>10} {'tip ' + l:>9} {'x ' + l:>6}"
head += f" {'best vs ' + labels[0]:>12}"
print(head)
for key, a in runs[0].items():
    d = float(a["dense_ms"])
    line = f"{key[0]:>7} {key[1]:>5} {key[2]:>10} {key[3]:>5} {d:9.4f}"
    times = []
    for r in runs:
        b = r[key]
        f = float(b["fasa_ms"])
        times.append(f)
        line += f" {f:10.4f} {float(b['tip_ms']):9.4f} {float(b['dense_ms']) / f:6.2f}"
    line += f" {times[0] / min(times[1:] or times):12.2f}"
    print(line)
EOF
