#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# FASA-M on a real model: fasa-eval's perplexity protocol with every layer's attention on
# backend::cuda, FASA-C (the whole cache on the GPU) and FASA-M (--offload: the slab on the GPU,
# the other key dims and the values in pinned host memory, each step's missing rows fetched over
# the bus) on the same windows and calibration, under both GQA modes. Their perplexities must
# agree to the printed digits. Usage, on the GPU machine from the repository root:
#   bash benchmarks/cuda/offload_model.sh MODEL.gguf TEXT CALIBRATION.query_head.json \
#     CALIBRATION.kv_head.json [windows]
# Binaries: .device/bin/fasa-eval (benchmarks/cuda/stage.sh). Results go to $OUT or
# benchmarks/results/cuda/latest: offload_model.txt and ppl-fasa-{c,m}-{query_head,kv_head}.csv.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
model="$1" text="$2" cal_q="$3" cal_kv="$4" windows="${5:-2}"
out="${OUT:-benchmarks/results/cuda/latest}"
mkdir -p "$out"
bin=.device/bin
status=0
log="$out/offload_model.txt"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$log"
echo "binaries built from $(cat "$bin/BUILD" 2>/dev/null || echo '?')" | tee -a "$log"
for mode in query_head kv_head; do
  cal="$cal_q"
  [ "$mode" = kv_head ] && cal="$cal_kv"
  for variant in c m; do
    extra=()
    [ "$variant" = m ] && extra=(--offload)
    cmd=("$bin/fasa-eval" ppl --model "$model" --text "$text" --windows "$windows" --prefill 7000
         --decode 1000 --budget 0.1 --granularity "$mode" --calibration "$cal" --backend cuda
         --selector fasa "${extra[@]}" --csv "$out/ppl-fasa-$variant-$mode.csv")
    echo "+ ${cmd[*]}" | sed "s|$out/||g" | tee -a "$log"
    SECONDS=0
    # progress bars redraw with \r: split them into lines and drop them, keep the messages
    "${cmd[@]}" 2>&1 | tr '\r' '\n' | grep -v ' ETA ' | tee -a "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    echo "(${SECONDS} s)" | tee -a "$log"
  done
done
exit "$status"
