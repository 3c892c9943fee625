#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# The real model on the GPU: fasa-eval's perplexity protocol (docs/results.md, "Perplexity") with
# every layer's attention on backend::cuda, the same windows, selectors and calibration as the
# CPU rows of docs/results.md, so the two can be compared number for number. Usage, on the GPU
# machine from the repository root:
#   bash benchmarks/cuda/model_eval.sh MODEL.gguf TEXT CALIBRATION.query_head.json [windows]
# Binaries: .device/bin/fasa-eval (benchmarks/cuda/stage.sh). Results go to $OUT or
# benchmarks/results/cuda/latest: ppl-cuda.csv (bf16 cache: dense, oracle, fasa),
# ppl-cuda-fp32.csv (fp32 cache: fasa), and the printed tables with their commands.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
model="$1" text="$2" calibration="$3" windows="${4:-3}"
out="${OUT:-benchmarks/results/cuda/latest}"
mkdir -p "$out"
bin=.device/bin
status=0
run() {
  echo "+ $*" | sed "s|$out/||g" | tee -a "$out/model_eval.txt"
  # progress bars redraw with \r: split them into lines and drop them, keep the messages
  "$@" 2>&1 | tr '\r' '\n' | grep -v ' ETA ' | tee -a "$out/model_eval.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$out/model_eval.txt"
echo "binaries built from $(cat "$bin/BUILD" 2>/dev/null || echo '?')" | tee -a "$out/model_eval.txt"
common=(ppl --model "$model" --text "$text" --windows "$windows" --prefill 7000 --decode 1000
  --budget 0.1 --calibration "$calibration")
SECONDS=0
run "$bin/fasa-eval" "${common[@]}" --backend cuda --selector dense,oracle,fasa \
  --csv "$out/ppl-cuda.csv"
echo "(${SECONDS} s)" | tee -a "$out/model_eval.txt"
SECONDS=0
run "$bin/fasa-eval" "${common[@]}" --backend cuda-fp32 --selector fasa --csv "$out/ppl-cuda-fp32.csv"
echo "(${SECONDS} s)" | tee -a "$out/model_eval.txt"
exit "$status"
