#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
"""Checks what fasa's GGUF reader saw in a model against the Python gguf package (llama.cpp's
gguf-py: GGUFReader and gguf.quants.dequantize), an independent implementation.

    python3 tests/model/gguf_reference.py MODEL.gguf MANIFEST.json

tests/model/gguf_test.cpp ("gguf default model: ... match Python gguf") writes MANIFEST.json
and the binary file it names:
  version, alignment, data_offset
  metadata: [{key, type, element_type?, value}] in file order; strings as hex of their bytes,
            arrays as lists (nested), non-finite floats as strings
  tensors:  [{name, type (ggml id), dims (ggml order), offset (in the data section), n_bytes}]
  rows:     [{tensor, first_row, n_rows, row_length, byte_offset}]: float32 values in the binary
  row_sums: [{tensor, n_rows, byte_offset}]: float64 sum of every row, in the binary
Checks: the header facts, every metadata key, type and value, the tensor table entry by entry,
every dumped row with max |fasa - gguf| / max |gguf| < 1e-6 and identical NaN positions, and
every row sum within 1e-9 of the row's sum of magnitudes. Prints one line per check; the last
line is "gguf_reference: all checks passed" (exit 0) or a failure count (exit 1).
"""

import json
import sys

import numpy as np
import gguf
from gguf import GGUFValueType

MAX_RELATIVE_ERROR = 1e-6
ROW_SUM_TOLERANCE = 1e-9

failures = []


def check(ok, what):
    print(("ok       " if ok else "MISMATCH ") + what)
    if not ok:
        failures.append(what)


def field_value(field, part_index, value_type):
    """The value of one scalar or string part of a GGUFReader field, as fasa's manifest writes it."""
    part = field.parts[part_index]
    if value_type == GGUFValueType.STRING:
        return bytes(part).hex()
    if value_type == GGUFValueType.BOOL:
        return bool(part[0])
    if value_type in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        x = float(part[0])
        return x if np.isfinite(x) else None  # the manifest writes non-finite floats as text
    return int(part[0])


def check_metadata(reader, manifest):
    fields = [f for name, f in reader.fields.items() if not name.startswith("GGUF.")]
    ours = manifest["metadata"]
    check([f.name for f in fields] == [e["key"] for e in ours],
          f"metadata keys and their order ({len(ours)} keys)")
    for field, entry in zip(fields, ours):
        key = entry["key"]
        main = field.types[0]
        check(main.name.lower() == entry["type"],
              f"metadata '{key}': type {entry['type']}")
        if main == GGUFValueType.ARRAY:
            if len(field.types) > 2 or not field.types[1:]:
                print(f"skipped  metadata '{key}': nested or empty-typed array")
                continue
            sub = field.types[1]
            check(sub.name.lower() == entry["element_type"],
                  f"metadata '{key}': element type {entry['element_type']}")
            theirs = [field_value(field, i, sub) for i in field.data]
            mine = [None if isinstance(v, str) and sub != GGUFValueType.STRING else v
                    for v in entry["value"]]
            check(theirs == mine, f"metadata '{key}': all {len(theirs)} elements")
        else:
            theirs = field_value(field, field.data[0], main)
            mine = entry["value"]
            if isinstance(mine, str) and main != GGUFValueType.STRING:
                mine = None
            check(theirs == mine, f"metadata '{key}' = {str(mine)[:60]}")


def check_tensors(reader, manifest):
    ours = manifest["tensors"]
    check(len(reader.tensors) == len(ours), f"tensor count {len(ours)}")
    data_offset = manifest["data_offset"]
    bad = []
    for t, e in zip(reader.tensors, ours):
        theirs = (t.name, int(t.tensor_type), [int(d) for d in t.shape], int(t.data_offset),
                  int(t.n_bytes))
        mine = (e["name"], e["type"], e["dims"], data_offset + e["offset"], e["n_bytes"])
        if theirs != mine:
            bad.append(f"{theirs} != {mine}")
    check(not bad, f"tensor table: names, types, dims, file offsets, sizes of {len(ours)} tensors"
          + ("".join("\n           " + b for b in bad[:5])))


def dequantized(tensor, cache={}):
    """The whole tensor as float32 rows: shape (n_rows, row_length)."""
    if tensor.name not in cache:
        x = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        cache[tensor.name] = np.asarray(x, dtype=np.float32).reshape(-1, int(tensor.shape[0]))
    return cache[tensor.name]


def check_values(reader, manifest, blob):
    tensors = {t.name: t for t in reader.tensors}
    for d in manifest.get("rows", []):
        t = tensors[d["tensor"]]
        ref = dequantized(t)
        first, n, length = d["first_row"], d["n_rows"], d["row_length"]
        check(length == ref.shape[1], f"{t.name}: row length {length}")
        got = np.frombuffer(blob, dtype="<f4", count=n * length,
                            offset=d["byte_offset"]).reshape(n, length)
        want = ref[first:first + n]
        same_nan = np.array_equal(np.isnan(got), np.isnan(want))
        finite = ~np.isnan(want)
        scale = float(np.max(np.abs(want[finite]))) if finite.any() else 0.0
        diff = float(np.max(np.abs(got[finite] - want[finite]))) if finite.any() else 0.0
        rel = diff / scale if scale > 0 else diff
        identical = int(np.sum(got.view(np.uint32) == want.view(np.uint32)))
        check(same_nan and rel < MAX_RELATIVE_ERROR,
              f"{t.name} ({t.tensor_type.name}) rows [{first}, {first + n}): relative error "
              f"{rel:.3g}, {identical} of {got.size} values bit-identical")
    for d in manifest.get("row_sums", []):
        t = tensors[d["tensor"]]
        ref = dequantized(t).astype(np.float64)
        n = d["n_rows"]
        got = np.frombuffer(blob, dtype="<f8", count=n, offset=d["byte_offset"])
        want = ref.sum(axis=1)
        tol = ROW_SUM_TOLERANCE * np.abs(ref).sum(axis=1) + 1e-30
        bad = int(np.sum(~(np.abs(got - want) <= tol)))
        check(n == ref.shape[0] and bad == 0,
              f"{t.name} ({t.tensor_type.name}): sums of all {n} rows ({bad} off)")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model, manifest_path = sys.argv[1:]
    with open(manifest_path) as f:
        manifest = json.load(f)
    with open(manifest["bin"], "rb") as f:
        blob = f.read()
    reader = gguf.GGUFReader(model)
    version = int(reader.fields["GGUF.version"].parts[-1][0])
    check(version == manifest["version"], f"version {manifest['version']}")
    check(int(reader.alignment) == manifest["alignment"], f"alignment {manifest['alignment']}")
    check(int(reader.data_offset) == manifest["data_offset"],
          f"data section at byte offset {manifest['data_offset']}")
    check_metadata(reader, manifest)
    check_tensors(reader, manifest)
    check_values(reader, manifest, blob)
    if failures:
        print(f"gguf_reference: {len(failures)} checks failed")
        sys.exit(1)
    print("gguf_reference: all checks passed")


if __name__ == "__main__":
    main()
