#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# The tools' command lines: every tool and subcommand answers --help, and bad flags or
# files give a non-zero exit with a message naming the problem (never a crash or a silent run).
# Usage: cli_test.sh TOOLS_DIR. Cases that load a model need $FASA_MODEL (or the default model);
# without it they are skipped, unless FASA_REQUIRE_MODEL_TESTS=1.
set -u
tools="$1"
fail=0
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# expect_ok CMD...: exit 0
expect_ok() {
  if ! "$@" >"$tmp/out" 2>&1; then
    echo "FAIL (exit $?): $*"; tail -5 "$tmp/out"; fail=1
  fi
}
# expect_error "message part" CMD...: exit 1 (a handled error, not a signal) and the message
expect_error() {
  local want="$1"; shift
  "$@" >"$tmp/out" 2>&1
  local rc=$?
  if [ $rc -eq 0 ] || [ $rc -gt 128 ] || ! grep -qF -- "$want" "$tmp/out"; then
    echo "FAIL (exit $rc, want an error saying '$want'): $*"; tail -5 "$tmp/out"; fail=1
  fi
}

for sub in ppl retrieval agreement fidelity longbench overlap; do
  expect_ok "$tools/fasa-eval" "$sub" --help
  expect_ok "$tools/fasa-ablate" "$sub" --help
done
expect_ok "$tools/fasa-calibrate" --help
expect_error "subcommand" "$tools/fasa-eval"
expect_error "--out is required" "$tools/fasa-ablate" ppl
expect_error "haystack not in {needle,passkey}" "$tools/fasa-eval" retrieval --task haystack
expect_error "does not exist" "$tools/fasa-eval" ppl --model "$tmp/missing.gguf"
printf 'GGUF\003\000\000\000garbage' >"$tmp/bad.gguf"
expect_error "bad.gguf" "$tools/fasa-eval" ppl --model "$tmp/bad.gguf"
expect_error "does not exist" "$tools/fasa-calibrate" --model "$tmp/missing.gguf"
expect_error "N_tip must be 0 (head_dim/8) or a number of FCs >= 1, got -1" "$tools/fasa-generate" \
  --prompt hi --n-tip -1
expect_error "'x' is not a whole number" "$tools/fasa-eval" ppl --n-tip 8,x
expect_error "N_tip must be 0" "$tools/fasa-calibrate" --n-tip -2
expect_error "--select-k: Value 0 not in range" "$tools/fasa-calibrate" --select-k 0
expect_error "--prompt is empty" "$tools/fasa-generate" --prompt ""

# Every numeric flag is checked as it is parsed, in one line naming the flag: a non-number, a
# negative, a zero where zero means nothing, an absurd size (a sample of each, tool by tool).
expect_error "--budget: 'x' is not a number" "$tools/fasa-demo" --budget x
expect_error "--budget: a budget is a whole number of tokens in [1, 16777216]" "$tools/fasa-demo" \
  --budget 1e12
expect_error "--max-tokens: must be a whole number in [1, 1048576], got 0" "$tools/fasa-demo" \
  --max-tokens 0
expect_error "--top-p: must be a number in (0, 1], got 0" "$tools/fasa-generate" --prompt hi \
  --top-p 0
expect_error "--temperature: must be a number in [0, 100], got -1" "$tools/fasa-generate" \
  --prompt hi --temperature -1
expect_error "--temperature: 'nan' is not a finite number" "$tools/fasa-generate" --prompt hi \
  --temperature nan
expect_error "--sinks: must be a whole number in [0, 16777216], got -2" "$tools/fasa-generate" \
  --prompt hi --sinks -2
expect_error "--contexts: '99999999999999999999' is far too large" "$tools/fasa-model-bench" \
  --contexts 99999999999999999999
expect_error "--decode: must be a whole number in [1, 1048576], got 0" "$tools/fasa-model-bench" \
  --decode 0
expect_error "--k: '1e3' is not a whole number" "$tools/fasa-calibrate" --k 16,1e3
expect_error "--prefill: must be a whole number in [1, 16777216], got 0" "$tools/fasa-eval" ppl \
  --prefill 0
expect_error "--windows: must be a whole number in [1, 1000000], got -1" "$tools/fasa-ablate" ppl \
  --windows -1 --out "$tmp/ablate"
expect_error "--depths: must be a number in [0, 1], got 1.5" "$tools/fasa-eval" retrieval \
  --depths 0.5,1.5
expect_error "--lengths: '2k' is not a whole number" "$tools/fasa-eval" retrieval --lengths 2k
expect_error "--prompt-length: must be a whole number in [1, 16777216], got 0" \
  "$tools/fasa-eval" fidelity --prompt-length 0
expect_error "--first: must be a whole number in [0, 1073741824], got -1" "$tools/fasa-eval" \
  longbench --first -1
expect_error "--budget: a budget is a whole number of tokens" "$tools/fasa-eval" agreement \
  --budget 256,-1
expect_error "--prefix-cache-mb: must be a number in [0, 1048576], got -5" "$tools/fasa-eval" \
  ppl --prefix-cache-mb -5
expect_error "--lags: must be a whole number in [1, 256], got 0" "$tools/fasa-eval" overlap \
  --lags 1,0
expect_error "--lags: 'x' is not a whole number" "$tools/fasa-eval" overlap --lags 1,x
expect_error "--lags: must be a whole number in [1, 256], got 1000" "$tools/fasa-ablate" overlap \
  --lags 1000 --out "$tmp/ablate"
expect_error "--steps: must be a whole number in [2, 1048576], got 1" "$tools/fasa-eval" overlap \
  --steps 1
expect_error "--prefill: must be a whole number in [1, 16777216], got 0" "$tools/fasa-eval" \
  overlap --prefill 0
expect_error "--skip: must be a whole number in [0, 16777216], got -1" "$tools/fasa-eval" overlap \
  --skip -1
expect_error "--budget: a budget is a whole number of tokens" "$tools/fasa-eval" overlap \
  --budget 1.5

# fasa-bench (no model): bad sizes, and the CUDA sweep's own flags given to a CPU backend.
if [ -x "$tools/fasa-bench" ]; then
  expect_ok "$tools/fasa-bench" --help
  expect_error "--budgets: a budget is a whole number of tokens" "$tools/fasa-bench" --budgets 0
  expect_error "--budgets: a budget is a whole number of tokens" "$tools/fasa-bench" --budgets 1.5
  expect_error "--n-tip: must be a whole number in [1, 65536], got 0" "$tools/fasa-bench" --n-tip 0
  expect_error "N_tip (40) must be between 1" "$tools/fasa-bench" --n-tip 40 --head-dim 64 \
    --bandwidth-mib 0
  expect_error "--heads: must be a whole number in [1, 4096], got 0" "$tools/fasa-bench" --heads 0
  expect_error "--seed: '-3' is not a whole number >= 0" "$tools/fasa-bench" --seed -3
  expect_error "--split-pdl: 'on' is not a whole number" "$tools/fasa-bench" --split-pdl on
  expect_error "multiple of num_kv_heads" "$tools/fasa-bench" --heads 3 --kv-heads 2
  expect_error "at least 1 token" "$tools/fasa-bench" --contexts 0
  expect_error "'4k' is not a whole number" "$tools/fasa-bench" --contexts 1024,4k
  expect_error "--batches applies to --backend cuda only" "$tools/fasa-bench" --batches 8
  expect_error "--split-select-cluster applies to --backend cuda only" "$tools/fasa-bench" \
    --split-select-cluster 0
  expect_error "--batches" "$tools/fasa-bench" --backend cuda --batches 0
  expect_error "--split-select-lead-from" "$tools/fasa-bench" --backend cuda \
    --split-select-lead-from 3
fi

model="${FASA_MODEL:-$HOME/.cache/fasa/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
if [ -f "$model" ]; then
  m=(--model "$model")
  expect_error "--budget: a budget is a whole number of tokens" "$tools/fasa-eval" ppl "${m[@]}" --budget 0
  expect_error "unknown selector 'h2o'" "$tools/fasa-eval" ppl "${m[@]}" --selector h2o
  expect_error "unknown granularity" "$tools/fasa-eval" ppl "${m[@]}" --granularity per_token
  expect_error "unknown backend 'vulkan'" "$tools/fasa-eval" ppl "${m[@]}" --backend vulkan
  expect_error "--calibration-k: must be a whole number in [0, 16777216], got -1" "$tools/fasa-eval" ppl "${m[@]}" --calibration-k -1
  expect_error "--sinks: must be a whole number in [0, 16777216], got -1" "$tools/fasa-eval" ppl "${m[@]}" --sinks 2,-1
  expect_error "--recent: must be a whole number in [0, 16777216], got -4" "$tools/fasa-ablate" ppl "${m[@]}" --out "$tmp/a.csv" \
    --recent -4
  expect_error "cannot open text" "$tools/fasa-eval" ppl "${m[@]}" --text "$tmp/none.txt"
  echo "too short" >"$tmp/short.txt"
  expect_error "windows of" "$tools/fasa-eval" ppl "${m[@]}" --text "$tmp/short.txt" --selector dense
  echo "{not json" >"$tmp/cal.json"
  for i in $(seq 50); do echo "Call me Ishmael. Some years ago, never mind how long precisely."; done \
    >"$tmp/text.txt"
  expect_error "cal.json" "$tools/fasa-eval" ppl "${m[@]}" --selector fasa --calibration "$tmp/cal.json" \
    --windows 1 --prefill 8 --decode 2 --skip 0 --text "$tmp/text.txt"
  if ! nvidia-smi >/dev/null 2>&1; then  # no GPU here: a clear refusal, not a crash
    expect_error "--backend cuda" "$tools/fasa-eval" ppl "${m[@]}" --backend cuda --selector dense \
      --windows 1 --prefill 8 --decode 2 --skip 0 --text "$tmp/text.txt"
  fi
  # forced tokens name the variant (and only where they are asked for)
  expect_ok "$tools/fasa-eval" ppl "${m[@]}" --selector dense,oracle --budget 4 --sinks 0,2 \
    --recent 3 --windows 1 --prefill 8 --decode 2 --skip 0 --text "$tmp/text.txt" --csv "$tmp/f.csv"
  for key in "oracle budget=4 mode=query_head sinks=0 recent=3" \
    "oracle budget=4 mode=query_head sinks=2 recent=3"; do
    grep -qF "$key" "$tmp/f.csv" || { echo "FAIL: no row '$key' in the forced-token run"; fail=1; }
  done
  echo '{"input": "", "context": "x"}' >"$tmp/lb.jsonl"
  expect_error "answers" "$tools/fasa-eval" longbench "${m[@]}" --file "$tmp/lb.jsonl" --task multi_news
  expect_error "--depths: must be a number in [0, 1], got 1.5" "$tools/fasa-eval" retrieval "${m[@]}" --depths 1.5
  expect_error "the folder" "$tools/fasa-eval" ppl "${m[@]}" --csv "$tmp/no/such/dir/x.csv"
  expect_error "--n-tip 40 exceeds" "$tools/fasa-eval" agreement "${m[@]}" --selector fasa \
    --n-tip 40 --prefill 16 --steps 1 --calibration "$tmp/cal.json" --text "$tmp/text.txt"
  # overlap: a lag needs more steps than itself, a text long enough, and a small run works
  expect_error "--lags 8 needs more than 8 --steps, got 8" "$tools/fasa-eval" overlap "${m[@]}" \
    --selector oracle --lags 1,8 --steps 8 --text "$tmp/text.txt"
  expect_error "tokens; need" "$tools/fasa-eval" overlap "${m[@]}" --selector oracle \
    --text "$tmp/short.txt" --skip 0 --prefill 16 --steps 4 --lags 1,2
  for g in query_head kv_head; do
    expect_ok "$tools/fasa-eval" overlap "${m[@]}" --selector dense,oracle --budget 4 \
      --granularity $g --skip 0 --prefill 16 --steps 4 --lags 1,2 --text "$tmp/text.txt" \
      --csv "$tmp/o.csv"
    grep -q "overlap_lag2" "$tmp/o.csv" && grep -q "fetch_lag1" "$tmp/o.samples.csv" ||
      { echo "FAIL: overlap --granularity $g wrote no overlap columns"; fail=1; }
  done
  grep -q "group_dedup" "$tmp/o.csv" &&
    { echo "FAIL: overlap --granularity kv_head wrote a group_dedup column"; fail=1; }
elif [ "${FASA_REQUIRE_MODEL_TESTS:-0}" = 1 ]; then
  echo "FAIL: the model $model is missing and FASA_REQUIRE_MODEL_TESTS=1"; fail=1
else
  echo "skipped the model cases: $model is missing"
fi

[ $fail -eq 0 ] && echo "all CLI cases passed"
exit $fail
