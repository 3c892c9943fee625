// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Split-KV decode attention (flash-decoding): exact softmax(q K^T / sqrt(d)) V over a unit's
// tokens, the token range cut into chunks, one block per (chunk, unit, sequence), then a merge
// of the chunks' partial outputs by their log-sum-exp.
//  - Dense: a unit is a KV head with its whole query group, tokens 0 .. n-1: every K/V row is
//    read once for the group.
//  - FAC (FASA Eq. 8): the tokens are the unit's selected indices, gathered straight from the
//    cache rows (no staging copy); a unit is a KV head (kv_head granularity, the group shares
//    the rows) or one query head (query_head granularity, the paper's mode).
// Each row of the block's threads (D / vector-width lanes) owns one token at a time; a lane
// holds one 16-byte vector of K and of V, so a key row is one coalesced read. Queries arrive in
// the KV head's storage order (prepare_queries), so split_dominant rows need no per-dim
// indexing, and pre-scaled by log2(e)/sqrt(d) so the softmax runs on exp2.

#include <cstdint>

#include "fasa/backends/cuda/common.cuh"
#include "fasa/core/budget.hpp"
#include "fasa/core/shape.hpp"

namespace fasa::cuda::kernels {

inline constexpr int attend_threads = 128;

struct attend_args {
  attention_shape shape;
  const float* q_att;  // [batch, num_q_heads, head_dim], storage order, scaled
  const int* lengths;  // [batch]
  bool gather;         // FAC over idx (else dense over 0 .. n-1)
  const std::int32_t* idx;  // [batch, units, idx_stride] when gather
  std::int64_t idx_stride;
  token_budget budget = token_budget::all();  // tokens per unit when gather: budget.keep(n)
  bool unit_is_query_head;  // units are query heads (else KV heads with their group)
  int chunk;                // tokens per split
  int max_splits;
  float* part_o;    // [batch, num_q_heads, max_splits, head_dim]
  float* part_lse;  // [batch, num_q_heads, max_splits], log2 domain
};

// Tokens a unit of sequence b attends to.
__host__ __device__ inline std::int64_t attend_count(const attend_args& a, std::int64_t n) {
  return a.gather ? a.budget.keep(n) : n;
}

// grid: (max_splits, units, batch). QMAX >= queries per unit.
template <class Elem, class St, int D, int QMAX>
__global__ __launch_bounds__(attend_threads) void attend_split(St st, const Elem* cache,
                                                               std::int64_t seq_elems,
                                                               attend_args a) {
  constexpr int V = vec_elems<Elem>;
  constexpr int LANES = D / V;
  constexpr int ROWS = attend_threads / LANES;
  constexpr int U = 2;  // tokens per row and iteration: more loads in flight
  static_assert(LANES <= 32 && 32 % LANES == 0, "a key row must fit in one warp");
  __shared__ float sm_m[ROWS][QMAX], sm_l[ROWS][QMAX];
  __shared__ float sm_o[ROWS][QMAX][D];

  const int split = blockIdx.x, unit = blockIdx.y, b = blockIdx.z;
  const std::int64_t n = a.lengths[b];
  const std::int64_t count = attend_count(a, n);
  const std::int64_t begin = static_cast<std::int64_t>(split) * a.chunk;
  if (begin >= count) return;
  const std::int64_t end = begin + a.chunk < count ? begin + a.chunk : count;
  const int group = a.shape.group_size();
  const int kv = a.unit_is_query_head ? unit / group : unit;
  const int nq = a.unit_is_query_head ? 1 : group;
  const int q0 = a.unit_is_query_head ? unit : unit * group;
  const int row = threadIdx.x / LANES, lane = threadIdx.x % LANES, col = lane * V;

  float q[QMAX][V];
#pragma unroll
  for (int g = 0; g < QMAX; ++g)
#pragma unroll
    for (int e = 0; e < V; ++e)
      q[g][e] = g < nq ? a.q_att[(static_cast<std::int64_t>(b) * a.shape.num_q_heads + q0 + g) * D +
                                 col + e]
                       : 0.0f;
  const Elem* base = cache + b * seq_elems;
  const int fw = layout<St>::first_width(st);
  const bool in_first = col < fw;
  const int units = a.unit_is_query_head ? a.shape.num_q_heads : a.shape.num_kv_heads;
  const std::int32_t* list = a.gather ? a.idx + (static_cast<std::int64_t>(b) * units + unit) *
                                                    a.idx_stride
                                      : nullptr;

  float m[QMAX], l[QMAX], o[QMAX][V];
#pragma unroll
  for (int g = 0; g < QMAX; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < V; ++e) o[g][e] = 0.0f;
  }

  for (std::int64_t i0 = begin; i0 < end; i0 += ROWS * U) {
    uint4 kr[U], vr[U];
    bool valid[U];
#pragma unroll
    for (int uu = 0; uu < U; ++uu) {
      const std::int64_t i = i0 + row + uu * ROWS;
      valid[uu] = i < end;
      if (valid[uu]) {
        const std::int64_t t = list != nullptr ? list[i] : i;
        kr[uu] = load_raw(in_first ? base + layout<St>::first_row(st, kv, t) + col
                                   : base + layout<St>::second_row(st, kv, t) + (col - fw));
        vr[uu] = load_raw(base + layout<St>::value_row(st, kv, t) + col);
      }
    }
    float s[U][QMAX];
#pragma unroll
    for (int uu = 0; uu < U; ++uu) {
      float k[V];
      to_floats<Elem>(kr[uu], k);
#pragma unroll
      for (int g = 0; g < QMAX; ++g) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < V; ++e) dot = fmaf(q[g][e], valid[uu] ? k[e] : 0.0f, dot);
#pragma unroll
        for (int off = LANES / 2; off > 0; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        s[uu][g] = valid[uu] ? dot : -INFINITY;
      }
    }
    float p[U][QMAX];
#pragma unroll
    for (int g = 0; g < QMAX; ++g) {
      float mx = m[g];
#pragma unroll
      for (int uu = 0; uu < U; ++uu) mx = fmaxf(mx, s[uu][g]);
      if (mx == -INFINITY) {  // no valid token yet for this row
#pragma unroll
        for (int uu = 0; uu < U; ++uu) p[uu][g] = 0.0f;
        continue;
      }
      const float scale = exp2f(m[g] - mx);
      float psum = 0.0f;
#pragma unroll
      for (int uu = 0; uu < U; ++uu) psum += (p[uu][g] = exp2f(s[uu][g] - mx));
      l[g] = l[g] * scale + psum;
      m[g] = mx;
#pragma unroll
      for (int e = 0; e < V; ++e) o[g][e] *= scale;
    }
#pragma unroll
    for (int uu = 0; uu < U; ++uu) {
      if (!valid[uu]) continue;
      float v[V];
      to_floats<Elem>(vr[uu], v);
#pragma unroll
      for (int g = 0; g < QMAX; ++g)
#pragma unroll
        for (int e = 0; e < V; ++e) o[g][e] = fmaf(p[uu][g], v[e], o[g][e]);
    }
  }

  // Combine the block's rows: each row saw a strided subset of the chunk's tokens.
#pragma unroll
  for (int g = 0; g < QMAX; ++g) {
    if (lane == 0) {
      sm_m[row][g] = m[g];
      sm_l[row][g] = l[g];
    }
#pragma unroll
    for (int e = 0; e < V; ++e) sm_o[row][g][col + e] = o[g][e];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < nq * D; i += attend_threads) {
    const int g = i / D, dim = i % D;
    float mx = -INFINITY;
    for (int r = 0; r < ROWS; ++r) mx = fmaxf(mx, sm_m[r][g]);
    float den = 0.0f, num = 0.0f;
    for (int r = 0; r < ROWS; ++r) {
      if (sm_m[r][g] == -INFINITY) continue;
      const float w = exp2f(sm_m[r][g] - mx);
      den += w * sm_l[r][g];
      num += w * sm_o[r][g][dim];
    }
    const std::int64_t head = static_cast<std::int64_t>(b) * a.shape.num_q_heads + q0 + g;
    a.part_o[(head * a.max_splits + split) * D + dim] = num / den;
    if (dim == 0) a.part_lse[head * a.max_splits + split] = mx + log2f(den);
  }
}

// grid: (num_q_heads, batch); block: head_dim threads. out: [batch, num_q_heads, head_dim].
__global__ void merge_splits(attend_args a, float* out) {
  const int h = blockIdx.x, b = blockIdx.y, dim = threadIdx.x, d = a.shape.head_dim;
  const std::int64_t count = attend_count(a, a.lengths[b]);
  const int splits = static_cast<int>((count + a.chunk - 1) / a.chunk);
  const std::int64_t head = static_cast<std::int64_t>(b) * a.shape.num_q_heads + h;
  const float* lse = a.part_lse + head * a.max_splits;
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, lse[s]);
  float den = 0.0f, num = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float w = exp2f(lse[s] - mx);
    den += w;
    num += w * a.part_o[(head * a.max_splits + s) * d + dim];
  }
  out[head * d + dim] = num / den;
}

}  // namespace fasa::cuda::kernels
