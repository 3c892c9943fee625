// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// TIP scores (FASA Eq. 6) of every cached token for every selection unit, one thread per token.
// A block streams the first `width` storage positions of its KV head's key rows (for FASA-C the
// dominant-dim slab alone; for the oracle or a contiguous cache, whole rows) in 16-byte
// vectors, and scores each row for every unit that reads this KV head: one unit under kv_head
// granularity (the group's summed query), the group's query heads under query_head granularity,
// so a row is read once for the whole group either way. The unit's scoring query (prepared by
// prepare_queries) holds zeros outside its dominant dims, which keeps the math that of
// selector::fasa_tip::score: raw post-RoPE dot products, no scaling.
//
// Forced tokens (off by default, as in the paper) score +inf so the top-k keeps them first.

#include <cstdint>

#include "fasa/backends/cuda/common.cuh"
#include "fasa/core/budget.hpp"
#include "fasa/core/shape.hpp"

namespace fasa::cuda::kernels {

inline constexpr int tip_threads = 256;

struct tip_args {
  attention_shape shape;
  selection_granularity granularity;
  const float* q_tip;  // [batch, units, head_dim]: storage order, zero off the scored dims
  int width;           // storage positions scored (a multiple of the vector width)
  const int* lengths;  // [batch]
  forced_tokens forced;
  float* scores;  // [batch, units, score_stride]
  std::int64_t score_stride;
};

// grid: (ceil(max_len / tip_threads), kv_heads, batch). UMAX >= units per KV head.
template <class Elem, class St, int D, int UMAX>
__global__ __launch_bounds__(tip_threads) void tip_scores(St st, const Elem* cache,
                                                          std::int64_t seq_elems, tip_args a) {
  constexpr int V = vec_elems<Elem>;
  constexpr int MAXV = D / V;
  __shared__ float q_s[UMAX * D];
  const int b = blockIdx.z, h = blockIdx.y;
  const int group = a.shape.group_size();
  const bool per_query = a.granularity == selection_granularity::query_head;
  const int units = num_selection_units(a.shape, a.granularity);
  const int unit0 = per_query ? h * group : h;
  const int nu = per_query ? group : 1;
  for (int i = threadIdx.x; i < UMAX * D; i += blockDim.x) {
    const int u = i / D, j = i % D;
    q_s[i] = u < nu ? a.q_tip[(static_cast<std::int64_t>(b) * units + unit0 + u) * D + j] : 0.0f;
  }
  __syncthreads();
  const std::int64_t n = a.lengths[b];
  const std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= n) return;

  const Elem* base = cache + b * seq_elems;
  const int fw = layout<St>::first_width(st);
  const Elem* first = base + layout<St>::first_row(st, h, t);
  const Elem* second = base + layout<St>::second_row(st, h, t) - fw;
  const int nv = a.width / V;
  uint4 raw[MAXV];
#pragma unroll
  for (int c = 0; c < MAXV; ++c)
    if (c < nv) raw[c] = load_raw(c * V < fw ? first + c * V : second + c * V);
  float acc[UMAX];
#pragma unroll
  for (int u = 0; u < UMAX; ++u) acc[u] = 0.0f;
#pragma unroll
  for (int c = 0; c < MAXV; ++c) {
    if (c >= nv) break;
    float k[V];
    to_floats<Elem>(raw[c], k);
#pragma unroll
    for (int u = 0; u < UMAX; ++u)
#pragma unroll
      for (int e = 0; e < V; ++e) acc[u] = fmaf(q_s[u * D + c * V + e], k[e], acc[u]);
  }
  if (a.forced.any()) {
    const bool forced = (a.forced.current && t == n - 1) || t < a.forced.sinks ||
                        t >= n - a.forced.recent;
    if (forced)
#pragma unroll
      for (int u = 0; u < UMAX; ++u) acc[u] = __int_as_float(0x7f800000);  // +inf
  }
#pragma unroll
  for (int u = 0; u < UMAX; ++u)
    if (u < nu)
      a.scores[(static_cast<std::int64_t>(b) * units + unit0 + u) * a.score_stride + t] = acc[u];
}

}  // namespace fasa::cuda::kernels
