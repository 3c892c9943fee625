#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# long_run.sh BIN_DIR OUT_DIR SECONDS [CORPUS_DIR]: every fuzz target at once, each in libFuzzer's
# fork mode with several workers, for SECONDS of wall time; what docs/fuzzing.md's long runs
# used (the GPU machine's 16 cores). BIN_DIR holds the fuzz_* binaries and fasa_fuzz_seeds (a
# clang-fuzz build's tests/fuzz/); CORPUS_DIR, if given, is an earlier run's OUT_DIR, whose
# corpora this run starts from. FASA_FUZZ_WORKERS ("gguf=4 llama2c=3 ...") sets the workers a
# target; FASA_MODEL the BPE vocabulary of fuzz_tokenizer_encode (a GGUF; see fasa_fuzz_seeds
# --tokenizer-only), FASA_FUZZ_LLAMA2C_TOKENIZER its llama2.c vocabulary. OUT_DIR/<target>/ gets
# the log, the corpus and any crash-*/timeout-*/oom-* input; OUT_DIR/summary.txt one line a target.
set -euo pipefail
bin="$(cd "$1" && pwd)"
out="$2"
seconds="$3"
earlier="${4:-}"
workers="${FASA_FUZZ_WORKERS:-gguf=4 llama2c=3 llama2c_tokenizer=3 calibration=3 tokenizer_encode=3}"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
"$bin/fasa_fuzz_seeds" "$out/seeds"
for spec in $workers; do
  name="${spec%%=*}"
  n="${spec#*=}"
  dir="$out/$name"
  mkdir -p "$dir/corpus"
  if [ -n "$earlier" ] && [ -d "$earlier/$name/corpus" ]; then
    cp -r "$earlier/$name/corpus/." "$dir/corpus/"
  fi
  "$bin/fuzz_$name" -fork="$n" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=512 -max_len=65536 -print_final_stats=1 -artifact_prefix="$dir/" \
    "$dir/corpus" "$out/seeds/$name" >"$dir/log" 2>&1 &
done
status=0
wait || status=$?

# One line a target: executions, the coverage of the final corpus (edges, features), findings.
: >"$out/summary.txt"
for spec in $workers; do
  name="${spec%%=*}"
  dir="$out/$name"
  last="$(grep -E '^#[0-9]+: cov:' "$dir/log" | tail -n 1 || true)"
  cov="$("$bin/fuzz_$name" -runs=0 "$dir/corpus" 2>&1 | grep -E 'INITED' | tail -n 1 || true)"
  findings="$(find "$dir" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'timeout-*' \
    -o -maxdepth 1 -name 'oom-*' -o -maxdepth 1 -name 'leak-*' | wc -l)"
  echo "$name workers=${spec#*=} seconds=$seconds | last: $last | replay: $cov | findings: $findings" \
    | tee -a "$out/summary.txt"
done
exit "$status"
