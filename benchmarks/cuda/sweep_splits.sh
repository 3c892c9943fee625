#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# Sweeps the attention split options (cuda::split_options: --split-waves, --split-min-chunk) of
# dense and FASA-C on the GPU machine and writes one CSV, the bench's columns plus the two
# options. Usage: bash benchmarks/cuda/sweep_splits.sh [out.csv] (binaries: .device/bin, see
# stage.sh). Extra fasa-bench flags go in FASA_SWEEP_ARGS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out="${1:-${OUT:-benchmarks/results/cuda/latest}/splits.csv}"
bin=.device/bin
tmp="$(mktemp -d)"
read -r -a extra <<<"${FASA_SWEEP_ARGS:---contexts 8192,32768,131072 --batches 1,8,32 --budgets 256,2048}"
first=1
for waves in 1 2 4 8; do
  for min_chunk in 64 256 1024; do
    "$bin/fasa-bench" --backend cuda --heads 32 --kv-heads 8 --head-dim 128 --n-tip 16 \
      --granularity kv_head,query_head --reps 10 "${extra[@]}" \
      --split-waves "$waves" --split-min-chunk "$min_chunk" --csv "$tmp/run.csv" >/dev/null
    if [ "$first" = 1 ]; then
      echo "split_waves,split_min_chunk,$(head -n 1 "$tmp/run.csv")" >"$out"
      first=0
    fi
    tail -n +2 "$tmp/run.csv" | sed "s/^/$waves,$min_chunk,/" >>"$out"
    echo "waves $waves min_chunk $min_chunk: $(($(wc -l <"$tmp/run.csv") - 1)) rows"
  done
done
rm -rf "$tmp"
