#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# The main job: installs the dependencies, builds the cpu-release preset and runs the demo.
# Until the model runner lands (fasa-demo on SmolLM2-135M-Instruct), the demo is example 01:
# calibration and FASA-C decode on synthetic data with planted dominant FCs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/install-deps.sh
cmake --preset cpu-release >/dev/null
cmake --build --preset cpu-release -j "$(nproc)" --target example_01_synthetic_decode
exec build/cpu-release/examples/example_01_synthetic_decode "$@"
