// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// FASA-M's kernels (storage::split_offload on the GPU): the far tier (the rest of the keys and
// all values) lives in pinned host memory mapped into the GPU's address space, the near tier
// (the dominant-dim slab) in device memory.
//  - fetch_rows: after the top-k, each unit's kept rows are rebuilt in a device working buffer:
//    the slab part from device memory, the rest and the values read straight from host memory
//    over the bus (zero-copy: one 16-byte load per lane, a warp per row, enough rows in flight to
//    keep the link busy). The buffer is laid out as a split_dominant cache of `kcap` rows per
//    unit (one "KV head" per unit, the same slab width), so FASA-C's own attention kernel
//    instantiations run on it unchanged, with the same arithmetic.

#include <cstdint>

#include "fasa/backends/cuda/common.cuh"
#include "fasa/policies/storage/split_offload.hpp"

namespace fasa::cuda::kernels {

// The two tiers of a batch's caches (fill_hashed in prepare.cuh writes through at()). Sequence b's
// near tier starts at near + b * near_stride, its far tier (a device-usable pointer into mapped
// host memory) at far + b * far_stride; an element index i of the layout is near when i <
// near_elements, else far at i - near_elements.
template <class Elem>
struct tiers {
  Elem* near = nullptr;
  std::int64_t near_stride = 0;
  Elem* far = nullptr;
  std::int64_t far_stride = 0;
  std::int64_t near_elements = 0;
  __host__ __device__ Elem* at(int b, std::int64_t index) const {
    return index < near_elements ? near + b * near_stride + index
                                 : far + b * far_stride + (index - near_elements);
  }
};

struct fetch_args {
  const std::int32_t* idx;  // [batch, units, idx_stride]: the kept tokens of each unit
  std::int64_t idx_stride;
  const int* keep;           // [batch]: rows kept per unit
  int units;                 // selection units (query heads or KV heads)
  int group;                 // query heads per KV head
  bool unit_is_query_head;   // units are query heads (else KV heads)
  std::int64_t work_stride;  // elements per sequence in the working buffer
};

// grid: (x, units, batch); block: any multiple of 32 (256). The working buffer of sequence b is
// laid out by `ws`: split_dominant with one "KV head" per unit, kcap rows and st's slab width;
// row i of unit u is the unit's i-th kept token.
template <class Elem, int D>
__global__ void fetch_rows(storage::split_offload st, tiers<Elem> tier, storage::split_dominant ws,
                           Elem* work, fetch_args f) {
  grid_dependency_sync();                         // programmatic dependent launch (common.cuh)
  constexpr int V = vec_elems<Elem>, KV = D / V;  // 16-byte vectors per key (and value) row
  const int u = blockIdx.y, b = blockIdx.z;
  const int kv = f.unit_is_query_head ? u / f.group : u;
  const std::int64_t rows = f.keep[b];
  const std::int32_t* list = f.idx + (static_cast<std::int64_t>(b) * f.units + u) * f.idx_stride;
  const int fw = st.slab_width;
  Elem* wb = work + b * f.work_stride;
  const std::int64_t items = rows * 2 * KV;
  for (std::int64_t item = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       item < items; item += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t i = item / (2 * KV);
    const int c = static_cast<int>(item % (2 * KV));
    const std::int64_t t = list[i];
    const Elem* src;
    Elem* dst;
    if (c >= KV) {  // a value vector
      const int col = (c - KV) * V;
      src = tier.at(b, st.value_row(kv, t) + col);
      dst = wb + ws.value_row(u, i) + col;
    } else if (c * V < fw) {  // a slab vector (device memory)
      src = tier.at(b, st.slab_row(kv, t) + c * V);
      dst = wb + ws.slab_row(u, i) + c * V;
    } else {  // a rest vector (host memory)
      src = tier.at(b, st.rest_row(kv, t) + (c * V - fw));
      dst = wb + ws.rest_row(u, i) + (c * V - fw);
    }
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
  }
}

}  // namespace fasa::cuda::kernels
