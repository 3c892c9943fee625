#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# The test command (what CI runs, through .ci/run): installs the dependencies, configures the
# cpu-release preset into build/cpu-release, builds it on every core and runs ctest. Where nvcc
# exists the CUDA targets compile as part of the build; GPU tests need a GPU and are skipped.
# The tools are compiled once more for AVX-512 (x86-64-v4, compile only), the file readers run
# under AddressSanitizer, and clang builds the library, tools and examples and runs each libFuzzer
# target for FASA_FUZZ_SECONDS (30) on its seeds. Exits non-zero on the first failure.
#
# Warnings are errors only in CI (CI=true, as CI sets it) or with FASA_WERROR=1: a new compiler's
# or a dependency's warning must not stop a user's build (cmake/fasa_warnings.cmake).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

preset="${FASA_PRESET:-cpu-release}"
jobs="$(nproc)"
werror=OFF
if [ "${CI:-}" = true ] || [ "${FASA_WERROR:-0}" = 1 ]; then werror=ON; fi
start=$SECONDS
stage() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - start)); }

stage "install dependencies"
bash scripts/install-deps.sh

stage "fetch the default model"
FASA_MODEL="$(bash scripts/fetch-model.sh | tail -n 1)"
export FASA_MODEL
# The model tests and the Python references must run here: a missing piece fails, not skips.
export FASA_PYTHON="$root/build/pyenv/bin/python"
export FASA_REQUIRE_MODEL_TESTS=1

stage "configure (preset $preset, warnings as errors: $werror)"
cmake --preset "$preset" -DCMAKE_COMPILE_WARNING_AS_ERROR="$werror" -DFASA_CHECK_AVX512=ON

stage "build (-j$jobs)"
cmake --build --preset "$preset" -j "$jobs"

stage "test"
ctest --preset "$preset" --output-on-failure

# The readers of untrusted files (GGUF, llama2.c checkpoints, tokenizer files, calibration
# files) once more under AddressSanitizer and UBSan: a bad file must give an error, never a
# read past the buffer. Only those tests: the model forward passes are too slow unoptimised.
if [ "${FASA_SKIP_ASAN:-0}" != 1 ]; then
  stage "file readers under AddressSanitizer (preset cpu-debug)"
  cmake --preset cpu-debug -DCMAKE_COMPILE_WARNING_AS_ERROR="$werror" >/dev/null
  cmake --build --preset cpu-debug -j "$jobs" --target fasa_tests
  build/cpu-debug/tests/fasa_tests \
    --test-case='gguf*,tokenizer*,calib: calibration file*,llama: llama2.c reader*,fuzz seeds*'
fi

# clang (the second compiler the README supports) builds everything (-O0: compile errors and
# warnings are what it is here for; the suite ran above) and the libFuzzer targets (tests/fuzz),
# each of which then runs for
# FASA_FUZZ_SECONDS on its generated seeds; the tokenizer target encodes with SmolLM2's
# vocabulary (FASA_MODEL). A finding fails the run and leaves its input under
# build/clang-fuzz/tests/fuzz/runs/. docs/fuzzing.md: longer runs.
if [ "${FASA_SKIP_CLANG:-0}" != 1 ]; then
  stage "clang: everything, and the fuzz targets (preset clang-fuzz)"
  cmake --preset clang-fuzz -DCMAKE_COMPILE_WARNING_AS_ERROR="$werror" >/dev/null
  cmake --build --preset clang-fuzz -j "$jobs"
  stage "fuzz (${FASA_FUZZ_SECONDS:=30} s a target)"
  export FASA_FUZZ_SECONDS
  ctest --preset clang-fuzz -j "$jobs"
fi

stage "done"
