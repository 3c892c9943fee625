#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# run.sh FUZZER SEEDS_PROGRAM WORK_DIR [SECONDS]: one libFuzzer run of FUZZER for SECONDS
# (default: $FASA_FUZZ_SECONDS, else 30) on a fresh corpus grown from the generated seeds. A
# crash, sanitizer report, uncaught exception, input over 10 s or allocation over 512 MB stops
# it with a non-zero exit and leaves the input in WORK_DIR (libFuzzer's crash-*, timeout-*,
# oom-* files); reproduce with `FUZZER WORK_DIR/crash-...`.
set -euo pipefail
fuzzer="$1"
seeds_program="$2"
work="$3"
seconds="${4:-${FASA_FUZZ_SECONDS:-30}}"
name="$(basename "$fuzzer")"
name="${name#fuzz_}"

rm -rf "$work"
mkdir -p "$work/corpus" "$work/all_seeds"
"$seeds_program" "$work/all_seeds"
seeds="$work/all_seeds/$name"
[ -d "$seeds" ] || { echo "run.sh: no seeds for '$name' in $work/all_seeds" >&2; exit 1; }

exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
  -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$seeds"
