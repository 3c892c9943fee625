#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# Sweeps the split options (cuda::split_options; fasa-bench --split-waves, --split-gather-waves,
# --split-min-chunk, --split-max, --split-tip-waves) of dense and FASA-C on the GPU machine and
# writes one CSV: the bench's columns after the five options. Usage:
#   bash benchmarks/cuda/sweep_splits.sh [out.csv]
# Binaries: .device/bin (see stage.sh). FASA_SWEEP_CONFIGS: space-separated
# waves:gather_waves:min_chunk:max_splits[:tip_waves] (tip_waves 1 when left out);
# FASA_SWEEP_ARGS: the cases (fasa-bench flags).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out="${1:-${OUT:-benchmarks/results/cuda/latest}/splits.csv}"
bin=.device/bin
tmp="$(mktemp -d)"
read -r -a configs <<<"${FASA_SWEEP_CONFIGS:-4:1:64:16 4:1:64:32 4:1:64:64 4:2:64:16 4:2:64:32 4:2:64:64 4:4:64:16 4:4:64:32 4:4:64:64}"
read -r -a cases <<<"${FASA_SWEEP_ARGS:---contexts 8192,32768,131072 --batches 1,8,32 --budgets 256,2048}"
first=1
for cfg in "${configs[@]}"; do
  IFS=: read -r waves gather min_chunk max_splits tip_waves <<<"$cfg"
  tip_waves="${tip_waves:-1}"
  "$bin/fasa-bench" --backend cuda --heads 32 --kv-heads 8 --head-dim 128 --n-tip 16 \
    --granularity kv_head,query_head --reps 10 "${cases[@]}" --split-waves "$waves" \
    --split-gather-waves "$gather" --split-min-chunk "$min_chunk" --split-max "$max_splits" \
    --split-tip-waves "$tip_waves" --csv "$tmp/run.csv" >/dev/null
  if [ "$first" = 1 ]; then
    echo "split_waves,split_gather_waves,split_min_chunk,split_max,split_tip_waves,$(head -n 1 "$tmp/run.csv")" >"$out"
    first=0
  fi
  tail -n +2 "$tmp/run.csv" | sed "s/^/$waves,$gather,$min_chunk,$max_splits,$tip_waves,/" >>"$out"
  echo "$cfg: $(($(wc -l <"$tmp/run.csv") - 1)) rows"
done
rm -rf "$tmp"
