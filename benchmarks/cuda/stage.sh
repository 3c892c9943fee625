#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# Stages what a GPU run carries into .device/ (git-ignored): the GPU test and benchmark
# binaries and fasa-eval (its --backend cuda runs a real model's attention on the GPU) built here (same nvcc 13.0 as the GPU machine; CUDA runtime linked statically) and a
# copy of nlohmann_json's headers and CMake package, which the GPU machine lacks, for the
# fallback build in benchmarks/cuda/run.sh. Usage: bash benchmarks/cuda/stage.sh [build-dir]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
build="${1:-build/device-stage}"
# A portable build (no -march=native: the GPU machine has another CPU).
[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFASA_BENCH_NATIVE=OFF \
  -DFASA_ENABLE_CUDA=ON -DFASA_REQUIRE_CUDA=ON -DFASA_BUILD_EXAMPLES=OFF -DFASA_INSTALL=OFF >/dev/null
cmake --build "$build" --target fasa_gpu_tests fasa-bench fasa-eval -j "$(nproc)"
mkdir -p .device/bin .device/prefix/include .device/prefix/share/cmake
cp "$build/tests/fasa_gpu_tests" "$build/tools/fasa-bench" "$build/tools/fasa-eval" .device/bin/
# what the binaries were built from, printed by run.sh with every result
git describe --always --dirty >.device/bin/BUILD
json_cmake="$(dirname "$(find /usr/share/cmake /usr/lib/cmake /usr/local -name nlohmann_jsonConfig.cmake 2>/dev/null | head -n 1)")"
cp -r "$(dirname "$(find /usr/include /usr/local/include -path '*nlohmann/json.hpp' | head -n 1)")" .device/prefix/include/
rm -rf .device/prefix/share/cmake/nlohmann_json
cp -r "$json_cmake" .device/prefix/share/cmake/nlohmann_json
du -sh .device
