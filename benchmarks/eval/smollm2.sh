#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# Every evaluation behind docs/results.md, on SmolLM2-135M-Instruct with the CPU backend: the
# calibrations, then each fasa-eval protocol and one fasa-ablate sweep. Writes CSV/JSON/SVG under
# benchmarks/results/eval/ (and the calibration files under build/eval-calibration/). About an
# hour on a 2-core machine. Usage: bash benchmarks/eval/smollm2.sh [step ...]
# with steps from: calibrate ppl retrieval agreement ablate fidelity longbench (default: all),
# and calibrate8k ppl8k retrieval8k (the paper-length calibration), calibrate4x ppl4x (four
# windows averaged), ppl6w_force and retrieval8k_force (forced sinks and recent tokens), run on
# request.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bin="${FASA_BIN:-build/cpu-release/tools}"
out=benchmarks/results/eval
cal=build/eval-calibration
data="${FASA_DATA_DIR:-../shared/data}"
mkdir -p "$out" "$cal"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(calibrate ppl retrieval agreement ablate fidelity longbench)
run() { echo "+ $*" | tee -a "$out/commands.log"; "$@"; }

# Calibration at long context: 6,000 prefill tokens + 64 measured decode steps of the Paul Graham
# essays (a different text from the perplexity windows), both GQA modes, both FC mappings.
calibrate() {
  for mapping in rotation_pairs adjacent_dims; do
    run "$bin/fasa-calibrate" --text "$data/haystack/PaulGrahamEssays.json" --prefill 6000 \
      --steps 64 --granularity both --mapping "$mapping" --k 256,512,1024,2048 --select-k 1024 \
      --out "$cal/essays-$mapping.json" --stats-json "$out/calibration-essays-$mapping.json" --quiet
  done
}
cals="$cal/essays-rotation_pairs.query_head.json,$cal/essays-rotation_pairs.kv_head.json"
cals_all="$cals,$cal/essays-adjacent_dims.query_head.json,$cal/essays-adjacent_dims.kv_head.json"

ppl() {
  run "$bin/fasa-eval" ppl --windows 3 --prefill 7000 --decode 1000 --budget 0.1 \
    --selector dense,oracle,fasa --calibration "$cals" \
    --csv "$out/ppl.csv" --json "$out/ppl.json"
}
retrieval() {
  run "$bin/fasa-eval" retrieval --task needle --lengths 1024,2048,4096,7680 \
    --depths 0,0.25,0.5,0.75,1 --selector dense,fasa --budget 256 --calibration "$cals" \
    --csv "$out/retrieval.csv" --json "$out/retrieval.json" --plot-dir "$out/plots"
}
agreement() {
  run "$bin/fasa-eval" agreement --prefill 4096 --steps 16 --selector oracle,fasa --budget 256 \
    --n-tip 4,8,16 --calibration "$cals" \
    --csv "$out/agreement.csv" --json "$out/agreement.json"
}
ablate() {
  run "$bin/fasa-ablate" agreement --prefill 2048 --steps 8 --selector oracle,fasa \
    --budget 64,128,256,512 --n-tip 4,8,16 --granularity query_head,kv_head \
    --mapping rotation_pairs,adjacent_dims --calibration "$cals_all" \
    --out "$out/ablate-agreement.csv" --plot-dir "$out/plots"
}
fidelity() {
  run "$bin/fasa-eval" fidelity --prompts 4 --prompt-length 2048 --generate 64 \
    --selector oracle,fasa --budget 256 --calibration "$cals" \
    --csv "$out/fidelity.csv" --json "$out/fidelity.json"
}
longbench() {
  run "$bin/fasa-eval" longbench --file "$data/longbench/multi_news.jsonl" --samples 3 \
    --selector dense,fasa --budget 256 --calibration "$cals" \
    --csv "$out/longbench.csv" --json "$out/longbench.json"
}

# The paper's perplexity script calibrates on one 8192 + 256 chunk: the same length here
# (7,936 + 256 of the essays), then perplexity and a 3-trial needle run with it. Not in the
# default steps (about 40 minutes on 2 cores); run: bash benchmarks/eval/smollm2.sh calibrate8k ppl8k retrieval8k
cals8k="$cal/essays8k-rotation_pairs.query_head.json,$cal/essays8k-rotation_pairs.kv_head.json"
calibrate8k() {
  run "$bin/fasa-calibrate" --text "$data/haystack/PaulGrahamEssays.json" --prefill 7936 \
    --steps 256 --granularity both --mapping rotation_pairs --k 256,512,1024,2048 --select-k 1024 \
    --out "$cal/essays8k-rotation_pairs.json" \
    --stats-json "$out/calibration-essays8k-rotation_pairs.json" --quiet
}
ppl8k() {
  run "$bin/fasa-eval" ppl --windows 3 --prefill 7000 --decode 1000 --budget 0.1 \
    --selector dense,oracle,fasa --calibration "$cals8k" \
    --csv "$out/ppl-essays8k.csv" --json "$out/ppl-essays8k.json"
}
retrieval8k() {
  run "$bin/fasa-eval" retrieval --task needle --lengths 1024,2048,4096,7680 \
    --depths 0,0.25,0.5,0.75,1 --trials 3 --selector dense,fasa --budget 256 \
    --calibration "$cals8k" --csv "$out/retrieval-essays8k.csv" \
    --json "$out/retrieval-essays8k.json" --plot-dir "$out/plots"
}
# The same needles with the oracle and FASA at N_tip 8 and 16 (the issue's retrieval bar fixes
# no N_tip); one dense prefill per case shared by every variant (about 45 minutes on 2 cores):
# bash benchmarks/eval/smollm2.sh retrieval8k_ntip
retrieval8k_ntip() {
  run "$bin/fasa-eval" retrieval --task needle --lengths 1024,2048,4096,7680 \
    --depths 0,0.25,0.5,0.75,1 --trials 3 --selector dense,oracle,fasa --budget 256 \
    --n-tip 8,16 --calibration "$cals8k" --prefix-cache-mb 12000 \
    --csv "$out/retrieval-essays8k-ntip.csv" --json "$out/retrieval-essays8k-ntip.json" \
    --plot-dir "$out/plots"
}

# Six windows, FASA at N_tip 8 with and without 4 sink and 64 recent tokens forced into the
# budget, one dense prefill per window shared by the variants (about 40 minutes on 2 cores):
# bash benchmarks/eval/smollm2.sh calibrate ppl6w_force
ppl6w_force() {
  run "$bin/fasa-eval" ppl --windows 6 --prefill 7000 --decode 1000 --budget 0.1 \
    --selector dense,fasa --sinks 0,4 --recent 0,64 \
    --calibration "$cal/essays-rotation_pairs.query_head.json" --prefix-cache-mb 8000 \
    --csv "$out/ppl-6w-force.csv" --json "$out/ppl-6w-force.json"
}

# The 60 needles of retrieval8k with FASA at N_tip 8, with and without the forced tokens of
# ppl6w_force (about 45 minutes on 2 cores): bash benchmarks/eval/smollm2.sh calibrate8k retrieval8k_force
retrieval8k_force() {
  run "$bin/fasa-eval" retrieval --task needle --lengths 1024,2048,4096,7680 \
    --depths 0,0.25,0.5,0.75,1 --trials 3 --selector dense,fasa --budget 256 --n-tip 8 \
    --sinks 0,4 --recent 0,64 --calibration "$cal/essays8k-rotation_pairs.query_head.json" \
    --prefix-cache-mb 12000 --csv "$out/retrieval-essays8k-force.csv" \
    --json "$out/retrieval-essays8k-force.json"
}

# four calibration windows averaged (4 x (6,000 + 128) of the essays), FASA's perplexity alone
# (compared with the dense 35.444 of the other runs): bash benchmarks/eval/smollm2.sh calibrate4x ppl4x
calibrate4x() {
  run "$bin/fasa-calibrate" --text "$data/haystack/PaulGrahamEssays.json" --samples 4 \
    --prefill 6000 --steps 128 --granularity both --mapping rotation_pairs --k 256,512,1024,2048 \
    --select-k 1024 --out "$cal/essays4x6k-rotation_pairs.json" \
    --compare "$cal/essays8k-rotation_pairs.query_head.json" \
    --stats-json "$out/calibration-essays4x6k-rotation_pairs.json" --quiet
}
ppl4x() {
  run "$bin/fasa-eval" ppl --windows 3 --prefill 7000 --decode 1000 --budget 0.1 --selector fasa \
    --calibration "$cal/essays4x6k-rotation_pairs.query_head.json,$cal/essays4x6k-rotation_pairs.kv_head.json" \
    --csv "$out/ppl-essays4x6k.csv" --json "$out/ppl-essays4x6k.json"
}

for s in "${steps[@]}"; do "$s" || echo "step $s failed" | tee -a "$out/commands.log"; done
