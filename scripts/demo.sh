#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# The main job: installs the dependencies, fetches the default model (SmolLM2-135M-Instruct),
# builds the cpu-release preset and runs fasa-demo: passkey retrieval in a ~4,000-token prompt
# with the dense KV cache and with FASA-C at a 256-token budget. The first run also calibrates
# (Moby Dick, about a minute) and caches the calibration. Arguments go to fasa-demo (--help).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/install-deps.sh
FASA_MODEL="$(bash scripts/fetch-model.sh | tail -n 1)"
export FASA_MODEL
cmake --preset cpu-release >/dev/null
cmake --build --preset cpu-release -j "$(nproc)" --target fasa-demo
exec build/cpu-release/tools/fasa-demo "$@"
