// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// TIP scores (FASA Eq. 6) of every cached token for every selection unit, a thread per token
// (tip_rows_per_thread tokens loaded together), blocks striding over the tokens. A block streams
// the first `width` storage positions of its KV head's key rows (for FASA-C the dominant-dim slab
// alone; for the oracle or a contiguous cache, whole rows) in 16-byte vectors, and scores each row
// for every unit that reads this KV head: one unit under kv_head granularity (the group's summed
// query), the group's query heads under query_head granularity, so a row is read once for the whole
// group either way. The unit's scoring query (prepared by prepare_queries) holds zeros outside its
// dominant dims, which keeps the math that of selector::fasa_tip::score: raw post-RoPE dot
// products, no scaling.
//
// Forced tokens (off by default, as in the paper) score +inf so the top-k keeps them first.
// The block also histograms the top bits of its scores (shared memory, then one global add per
// bin): the first pass of the radix top-k, fused here so the scores are read once after.

#include <cstdint>

#include "fasa/backends/cuda/common.cuh"
#include "fasa/backends/cuda/kernels/topk_radix.cuh"
#include "fasa/core/budget.hpp"
#include "fasa/core/shape.hpp"

namespace fasa::cuda::kernels {

inline constexpr int tip_threads = 256;
inline constexpr int tip_rows_per_thread = 2;  // rows loaded together: more bytes in flight

struct tip_args {
  attention_shape shape;
  selection_granularity granularity;
  const float* q_tip;  // [batch, units, head_dim]: storage order, zero off the scored dims
  int width;           // storage positions scored (a multiple of the vector width)
  const int* lengths;  // [batch]
  forced_tokens forced;
  token_budget budget = token_budget::all();  // rows that keep everything need no histogram
  float* scores;                              // [batch, units, score_stride]
  std::int64_t score_stride;
  unsigned* hist;  // [batch, units, topk_hist_bins], zeroed: the top-k's first digit
};

// grid: (blocks per KV head, kv_heads, batch); each block strides over the tokens. UMAX >= units
// per KV head.
template <class Elem, class St, int D, int UMAX>
__global__ __launch_bounds__(tip_threads) void tip_scores(St st, const Elem* cache,
                                                          std::int64_t seq_elems, tip_args a) {
  constexpr int V = vec_elems<Elem>;
  constexpr int R = tip_rows_per_thread;
  __shared__ float q_s[UMAX * D];
  __shared__ unsigned hist_s[UMAX * topk_hist_bins];
  const int b = blockIdx.z, h = blockIdx.y;
  const int group = a.shape.group_size();
  const bool per_query = a.granularity == selection_granularity::query_head;
  const int units = num_selection_units(a.shape, a.granularity);
  const int unit0 = per_query ? h * group : h;
  const int nu = per_query ? group : 1;
  const std::int64_t n = a.lengths[b];
  const bool histogram = a.budget.keep(n) < n;
  for (int i = threadIdx.x; i < UMAX * D; i += blockDim.x) {
    const int u = i / D, j = i % D;
    q_s[i] = u < nu ? a.q_tip[(static_cast<std::int64_t>(b) * units + unit0 + u) * D + j] : 0.0f;
  }
  for (int i = threadIdx.x; i < UMAX * topk_hist_bins; i += blockDim.x) hist_s[i] = 0;
  __syncthreads();

  const Elem* base = cache + b * seq_elems;
  const int fw = layout<St>::first_width(st);
  const int nv = a.width / V;
  float* scores = a.scores + (static_cast<std::int64_t>(b) * units + unit0) * a.score_stride;
  constexpr int CH = 4;  // vectors per row loaded at once (64 bytes of bf16: a 32-dim slab)
  for (std::int64_t t0 = static_cast<std::int64_t>(blockIdx.x) * tip_threads * R; t0 < n;
       t0 += static_cast<std::int64_t>(gridDim.x) * tip_threads * R) {
    float acc[R][UMAX];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int u = 0; u < UMAX; ++u) acc[r][u] = 0.0f;
#pragma unroll 1
    for (int c0 = 0; c0 < nv; c0 += CH) {
      uint4 raw[R][CH];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const std::int64_t t = t0 + r * tip_threads + threadIdx.x;
        if (t >= n) continue;
        const Elem* first = base + layout<St>::first_row(st, h, t);
        const Elem* second = base + layout<St>::second_row(st, h, t) - fw;
#pragma unroll
        for (int c = 0; c < CH; ++c) {
          const int col = (c0 + c) * V;
          if (c0 + c < nv) raw[r][c] = load_raw(col < fw ? first + col : second + col);
        }
      }
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int c = 0; c < CH; ++c) {
          if (c0 + c >= nv) break;
          float k[V];
          to_floats<Elem>(raw[r][c], k);
          const float* qc = q_s + (c0 + c) * V;
#pragma unroll
          for (int u = 0; u < UMAX; ++u)
#pragma unroll
            for (int e = 0; e < V; ++e) acc[r][u] = fmaf(qc[u * D + e], k[e], acc[r][u]);
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const std::int64_t t = t0 + r * tip_threads + threadIdx.x;
      const bool mine = t < n;
      if (mine && a.forced.any()) {
        const bool forced =
            (a.forced.current && t == n - 1) || t < a.forced.sinks || t >= n - a.forced.recent;
        if (forced)
#pragma unroll
          for (int u = 0; u < UMAX; ++u) acc[r][u] = __int_as_float(0x7f800000);  // +inf
      }
#pragma unroll
      for (int u = 0; u < UMAX; ++u)
        if (u < nu) {
          if (mine) scores[u * a.score_stride + t] = acc[r][u];
          if (histogram && mine)
            atomicAdd(&hist_s[u * topk_hist_bins + first_digit(acc[r][u])], 1u);
        }
    }
  }
  if (!histogram) return;
  __syncthreads();
  unsigned* hist = a.hist + (static_cast<std::int64_t>(b) * units + unit0) * topk_hist_bins;
  for (int i = threadIdx.x; i < nu * topk_hist_bins; i += blockDim.x)
    if (hist_s[i] != 0) atomicAdd(&hist[i], hist_s[i]);
}

// The same scores with LPR lanes per row (LPR = width / vector width, a power of two): lane c of
// a row loads the row's 16-byte chunk c, so a warp reads 32 / LPR consecutive rows as one
// contiguous, fully coalesced stretch, and the lanes sum their partial dot products with
// shuffles. Each thread takes RPT rows per pass to keep RPT loads in flight. grid and block as
// tip_scores.
template <class Elem, class St, int D, int UMAX, int LPR>
__global__ __launch_bounds__(tip_threads) void tip_scores_lanes(St st, const Elem* cache,
                                                                std::int64_t seq_elems,
                                                                tip_args a) {
  constexpr int V = vec_elems<Elem>;
  constexpr int RPT = 4;
  constexpr int ROWS = tip_threads / LPR;  // rows per load pass of the block
  static_assert(32 % LPR == 0, "a row's lanes must sit in one warp");
  __shared__ float q_s[UMAX * D];
  __shared__ unsigned hist_s[UMAX * topk_hist_bins];
  const int b = blockIdx.z, h = blockIdx.y;
  const int group = a.shape.group_size();
  const bool per_query = a.granularity == selection_granularity::query_head;
  const int units = num_selection_units(a.shape, a.granularity);
  const int unit0 = per_query ? h * group : h;
  const int nu = per_query ? group : 1;
  const std::int64_t n = a.lengths[b];
  const bool histogram = a.budget.keep(n) < n;
  for (int i = threadIdx.x; i < UMAX * D; i += blockDim.x) {
    const int u = i / D, j = i % D;
    q_s[i] = u < nu ? a.q_tip[(static_cast<std::int64_t>(b) * units + unit0 + u) * D + j] : 0.0f;
  }
  for (int i = threadIdx.x; i < UMAX * topk_hist_bins; i += blockDim.x) hist_s[i] = 0;
  __syncthreads();

  const Elem* base = cache + b * seq_elems;
  const int fw = layout<St>::first_width(st);
  const int c = threadIdx.x % LPR, col = c * V;
  const int r_in = threadIdx.x / LPR;
  float* scores = a.scores + (static_cast<std::int64_t>(b) * units + unit0) * a.score_stride;
  float qc[UMAX][V];
#pragma unroll
  for (int u = 0; u < UMAX; ++u)
#pragma unroll
    for (int e = 0; e < V; ++e) qc[u][e] = q_s[u * D + col + e];
  for (std::int64_t t0 = static_cast<std::int64_t>(blockIdx.x) * ROWS * RPT; t0 < n;
       t0 += static_cast<std::int64_t>(gridDim.x) * ROWS * RPT) {
    uint4 raw[RPT];
#pragma unroll
    for (int i = 0; i < RPT; ++i) {
      const std::int64_t t = t0 + i * ROWS + r_in;
      if (t < n)
        raw[i] = load_raw(col < fw ? base + layout<St>::first_row(st, h, t) + col
                                   : base + layout<St>::second_row(st, h, t) + (col - fw));
    }
#pragma unroll
    for (int i = 0; i < RPT; ++i) {
      const std::int64_t t = t0 + i * ROWS + r_in;
      float k[V];
      to_floats<Elem>(raw[i], k);
      float acc[UMAX];
#pragma unroll
      for (int u = 0; u < UMAX; ++u) {
        acc[u] = 0.0f;
#pragma unroll
        for (int e = 0; e < V; ++e) acc[u] = fmaf(qc[u][e], k[e], acc[u]);
#pragma unroll
        for (int off = LPR / 2; off > 0; off /= 2)
          acc[u] += __shfl_xor_sync(0xffffffffu, acc[u], off);
      }
      const bool mine = c == 0 && t < n;  // one lane of the row writes
      if (mine && a.forced.any()) {
        const bool forced =
            (a.forced.current && t == n - 1) || t < a.forced.sinks || t >= n - a.forced.recent;
        if (forced)
#pragma unroll
          for (int u = 0; u < UMAX; ++u) acc[u] = __int_as_float(0x7f800000);  // +inf
      }
#pragma unroll
      for (int u = 0; u < UMAX; ++u)
        if (u < nu) {
          if (mine) scores[u * a.score_stride + t] = acc[u];
          if (histogram && mine) atomicAdd(&hist_s[u * topk_hist_bins + first_digit(acc[u])], 1u);
        }
    }
  }
  if (!histogram) return;
  __syncthreads();
  unsigned* hist = a.hist + (static_cast<std::int64_t>(b) * units + unit0) * topk_hist_bins;
  for (int i = threadIdx.x; i < nu * topk_hist_bins; i += blockDim.x)
    if (hist_s[i] != 0) atomicAdd(&hist[i], hist_s[i]);
}

}  // namespace fasa::cuda::kernels
