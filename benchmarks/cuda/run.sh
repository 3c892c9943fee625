#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# Every GPU result in one call on the GPU machine (H200), from the repository root:
#   1. the GPU tests (tests/cuda/gpu_test.cu) against the CPU reference;
#   2. compute-sanitizer memcheck and racecheck over the smaller test cases;
#   3. fasa-bench --backend cuda at Llama-3.1-8B attention shapes (32/8 heads, d 128, bf16);
#   4. benchmarks/cuda/peers.py: PyTorch SDPA and the paper's PyTorch FASA pipeline on the same
#      tensors, outputs checked against fasa's.
#   offload: the tests and sanitizers, then fasa-bench --offload (dense, FASA-C and FASA-M in
#   the same rows, the host-to-device bandwidth and each case's bus floor; FASA-M once per share
#   of its row pool emptied before each step, FASA_OFFLOAD_MISS) into offload.csv; then
#   fasa-bench --capacity (each configuration's largest batch and its throughput) into
#   capacity.csv.
#   capacity: that last step alone.
#   probe: fasa-bench --bus-probe (scattered reads of pinned host memory by footprint and row
#   size, into bus_probe.csv), then a short FASA-M step bench with its stage breakdown (32K and
#   128K x batch 8 and 32, kv_head, shares 1, 0.25 and 0, into offload.csv): about 5 minutes.
#   gather: FASA-M's fetch paths (zero_copy, host_gather) at 32K/128K x 8/32, both modes, then
#   FASA-C with and without sorted kept lists (sort-0.csv, sort-1.csv): about 4 minutes.
# Usage: bash benchmarks/cuda/run.sh [quick|full|tests|bench|profile|offload|capacity|probe|gather]
# Binaries: .device/bin/{fasa_gpu_tests,fasa-bench} when present and runnable (built on the
# developer machine with the same nvcc and carried), else a CMake build here (the GPU machine
# lacks nlohmann_json: .device/prefix holds a copy, see benchmarks/cuda/stage.sh).
# Results go to $OUT (the device tool's folder) or benchmarks/results/cuda/latest.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mode="${1:-full}"
out="${OUT:-benchmarks/results/cuda/latest}"
mkdir -p "$out"
status=0
step() { printf '\n== %s (%ds)\n' "$*" "$SECONDS"; }

bin=.device/bin
if ! { "$bin/fasa_gpu_tests" --version >/dev/null 2>&1 && "$bin/fasa-bench" --help >/dev/null 2>&1; }; then
  step "build (the carried binaries are missing or do not run here)"
  cmake -S . -B build/cuda-device -DCMAKE_BUILD_TYPE=Release -DFASA_ENABLE_CUDA=ON \
    -DFASA_REQUIRE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DFASA_BUILD_EXAMPLES=OFF \
    -DFASA_INSTALL=OFF -DCMAKE_PREFIX_PATH="$PWD/.device/prefix" >"$out/build.log" 2>&1 &&
    cmake --build build/cuda-device -j "$(nproc)" --target fasa_gpu_tests fasa-bench \
      >>"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
  mkdir -p build/cuda-device/bin
  cp build/cuda-device/tests/fasa_gpu_tests build/cuda-device/tools/fasa-bench build/cuda-device/bin/
  bin=build/cuda-device/bin
fi

step "machine"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem \
    --format=csv
  echo "binaries: $bin, built from $(cat "$bin/BUILD" 2>/dev/null || echo 'this tree (CMake build here)')"
  nvcc --version | tail -n 2
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  # the tensor-core path must show HMMA instructions in the machine code
  echo "HMMA instructions in fasa-bench: $(cuobjdump --dump-sass "$bin/fasa-bench" | grep -c HMMA)"
  nvidia-smi --query-gpu=clocks.applications.graphics,clocks.default_applications.graphics,power.limit,power.default_limit \
    --format=csv
} 2>&1 | tee "$out/machine.txt"

if [ "$mode" = probe ]; then
  step "fasa-bench --bus-probe"
  cmd=("$bin/fasa-bench" --backend cuda --bus-probe --max-host-gib 16 --csv "$out/bus_probe.csv")
  echo "+ ${cmd[*]}" | tee "$out/bus_probe.txt"
  "${cmd[@]}" 2>&1 | tee -a "$out/bus_probe.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  step "fasa-bench --offload, short (stage breakdown)"
  cmd=("$bin/fasa-bench" --backend cuda --heads 32 --kv-heads 8 --head-dim 128 --n-tip 16
       --granularity kv_head --contexts 32768,131072 --batches 8,32 --budgets 256 --reps 5
       --warmup 2 --offload --offload-miss 1,0.25,0 --csv "$out/offload.csv")
  echo "+ ${cmd[*]}" | tee "$out/offload.txt"
  "${cmd[@]}" 2>&1 | tee -a "$out/offload.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  step "done (status $status)"
  exit "$status"
fi

if [ "$mode" = gather ]; then
  # FASA-M's two fetch paths side by side (zero-copy reads of the far tier against the host's
  # gather into a compact staging buffer), every row missing and a quarter; then FASA-C with and
  # without the sorted kept lists (split_options::sort_selection), the cost of determinism.
  step "fasa-bench --offload --offload-fetch zero_copy,host_gather"
  cmd=("$bin/fasa-bench" --backend cuda --heads 32 --kv-heads 8 --head-dim 128 --n-tip 16
       --granularity kv_head,query_head --contexts 32768,131072 --batches 8,32 --budgets 256
       --reps 10 --warmup 2 --offload --offload-miss 1,0.25 --offload-fetch zero_copy,host_gather
       --csv "$out/gather.csv")
  echo "+ ${cmd[*]}" | tee "$out/gather.txt"
  "${cmd[@]}" 2>&1 | tee -a "$out/gather.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  for sorted in 0 1; do
    step "fasa-bench FASA-C, --split-sort-selection $sorted"
    cmd=("$bin/fasa-bench" --backend cuda --heads 32 --kv-heads 8 --head-dim 128 --n-tip 16
         --granularity kv_head,query_head --contexts 8192,32768,131072 --batches 1,8,32
         --budgets 256,2048 --reps 10 --split-sort-selection "$sorted" --csv "$out/sort-$sorted.csv")
    echo "+ ${cmd[*]}" | tee "$out/sort-$sorted.txt"
    "${cmd[@]}" 2>&1 | grep -v "^# clocks" >>"$out/sort-$sorted.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  done
  step "done (status $status)"
  exit "$status"
fi

if [ "$mode" != bench ] && [ "$mode" != profile ] && [ "$mode" != capacity ]; then
  step "GPU tests"
  "$bin/fasa_gpu_tests" 2>&1 | tee "$out/gpu_tests.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  step "compute-sanitizer memcheck and racecheck (smaller cases)"
  small='*fp16, GQA 1, 3 and 8*,*exact ties*,*bad input*'
  for tool in memcheck racecheck; do
    echo "+ compute-sanitizer --tool $tool $bin/fasa_gpu_tests -tc=\"$small\"" >>"$out/sanitizer.txt"
    compute-sanitizer --tool "$tool" --error-exitcode 3 "$bin/fasa_gpu_tests" -tc="$small" \
      >>"$out/sanitizer.txt" 2>&1
    rc=$?
    tail -n 3 "$out/sanitizer.txt"
    [ "$rc" -eq 0 ] || { echo "compute-sanitizer $tool: exit $rc"; status=1; }
  done
fi
[ "$mode" = tests ] && exit "$status"

if [ "$mode" = profile ]; then
  # Hardware counters of each FASA-C kernel at one size (ncu reads counters on Firecracker
  # machines; the clocks are left alone). Writes profile.txt.
  step "ncu: FASA-C kernels at 32K x 8, kv_head, N_fac 256"
  ncu --clock-control none --kernel-name-base demangled \
    -k 'regex:prepare_queries|tip_scores|tip_select_cluster|topk_filter|topk_finish|attend_split|merge_splits' \
    --launch-skip 0 --launch-count 14 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
    --section LaunchStats --section SchedulerStats --section WarpStateStats \
    "$bin/fasa-bench" --backend cuda --contexts 32768 --batches 8 --budgets 256 \
    --granularity kv_head --reps 1 --warmup 0 >"$out/profile.txt" 2>&1 || status=1
  grep -E "^  [a-z_:<>, A-Z0-9]+\(|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Issue Slots Busy|No Eligible|Compute \(SM\) Throughput" \
    "$out/profile.txt" | head -150
  exit "$status"
fi

if [ "$mode" = offload ] || [ "$mode" = capacity ]; then
  if [ "$mode" = offload ]; then
    step "fasa-bench --backend cuda --offload (FASA-M)"
    cmd=("$bin/fasa-bench" --backend cuda --heads 32 --kv-heads 8 --head-dim 128 --n-tip 16
         --granularity kv_head,query_head --contexts "${FASA_OFFLOAD_CONTEXTS:-8192,32768,65536,131072}"
         --batches "${FASA_OFFLOAD_BATCHES:-1,8,32}" --budgets 256 --reps "${FASA_OFFLOAD_REPS:-20}"
         --offload --offload-miss "${FASA_OFFLOAD_MISS:-1,0.25}" --csv "$out/offload.csv")
    echo "+ ${cmd[*]}" | tee "$out/offload.txt"
    "${cmd[@]}" 2>&1 | tee -a "$out/offload.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  fi
  step "fasa-bench --backend cuda --capacity (the largest batch of each configuration)"
  cmd=("$bin/fasa-bench" --backend cuda --capacity --heads 32 --kv-heads 8 --head-dim 128
       --n-tip 16 --granularity kv_head,query_head --contexts "${FASA_CAPACITY_CONTEXTS:-8192,32768,131072}"
       --budgets 256 --layers 32 --weights-gib 15 --offload-miss 0.25 --max-host-gib 100
       --reps "${FASA_OFFLOAD_REPS:-20}" --csv "$out/capacity.csv")
  echo "+ ${cmd[*]}" | tee "$out/capacity.txt"
  "${cmd[@]}" 2>&1 | tee -a "$out/capacity.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  step "done (status $status)"
  exit "$status"
fi

step "fasa-bench --backend cuda"
case "$mode" in
  quick) reps=10 args=(--contexts 4096,32768,131072 --batches 1,8 --budgets 256,2048) ;;
  *) reps=30 args=(--contexts 4096,8192,16384,32768,65536,131072 --batches 1,8,32
                   --budgets 256,1024,2048) ;;
esac
dump=/tmp/fasa-bench-dump
rm -rf "$dump"
cmd=("$bin/fasa-bench" --backend cuda --heads 32 --kv-heads 8 --head-dim 128 --n-tip 16
     --granularity kv_head,query_head "${args[@]}" --reps "$reps" --csv "$out/bench.csv" --dump-dir "$dump")
echo "+ ${cmd[*]}" | tee "$out/bench.txt"
# The SM clock and throttle reasons while the GPU is busy (TIP and top-k are compute-bound,
# so their times follow the clock; dense decode follows the memory).
clocks() {
  nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu,clocks_throttle_reasons.active \
    --format=csv,noheader | sed "s/^/# clocks ($1): /"
}
("${cmd[@]}" 2>&1 | tee -a "$out/bench.txt") &
bench_pid=$!
while kill -0 "$bench_pid" 2>/dev/null; do
  sleep 4
  clocks "$((SECONDS)) s" >>"$out/bench.txt"
done
wait "$bench_pid" || status=1
grep "^# clocks" "$out/bench.txt" | tail -n 4

step "PyTorch peers on the same tensors"
pcmd=(python3 benchmarks/cuda/peers.py --dump "$dump" --csv "$out/peers.csv"
      --reps "$reps")
echo "+ ${pcmd[*]}" | tee "$out/peers.txt"
PYTHONUNBUFFERED=1 "${pcmd[@]}" 2>&1 | tee -a "$out/peers.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if [ "$mode" = full ]; then
  step "plot"
  python3 benchmarks/cuda/plot.py "$out/bench.csv" "$out/speedup.svg" || status=1
fi
step "done (status $status)"
exit "$status"
