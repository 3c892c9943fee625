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
// K/V tiles stream through a multi-stage cp.async pipeline into shared memory. The block's
// threads form groups of D / vector-width lanes, one group per (query head of the unit, token
// slot): a lane owns one 16-byte vector of the row, so the query heads of a GQA group read the
// same K/V tile from shared memory and each thread keeps one head's state only. Queries arrive
// in the KV head's storage order (prepare_queries), so split_dominant rows need no per-dim
// indexing, and pre-scaled by log2(e)/sqrt(d) so the softmax runs on exp2.

#include <cstdint>

#include "fasa/backends/cuda/common.cuh"
#include "fasa/core/budget.hpp"
#include "fasa/core/shape.hpp"

namespace fasa::cuda::kernels {

inline constexpr int attend_threads = 256;

struct attend_args {
  attention_shape shape;
  const float* q_att;       // [batch, num_q_heads, head_dim], storage order, scaled
  const int* lengths;       // [batch]
  bool gather;              // FAC over idx (else dense over 0 .. n-1)
  const std::int32_t* idx;  // [batch, units, idx_stride] when gather
  std::int64_t idx_stride;
  token_budget budget = token_budget::all();  // tokens per unit when gather: budget.keep(n)
  bool unit_is_query_head;  // units are query heads (else KV heads with their group)
  int chunk;                // tokens per split
  int max_splits;
  float* part_o;    // [batch, num_q_heads, max_splits, head_dim]
  float* part_lse;  // [batch, num_q_heads, max_splits], log2 domain
  // With one split per unit (max_splits == 1): the final output [batch, num_q_heads, head_dim],
  // written by the split itself instead of part_o / part_lse, and no merge_splits launch.
  float* out = nullptr;
};

// Tokens a unit of sequence b attends to.
__host__ __device__ inline std::int64_t attend_count(const attend_args& a, std::int64_t n) {
  return a.gather ? a.budget.keep(n) : n;
}

// The work of one attend block: sequence b's unit `unit`, tokens [begin, end) of its list, and
// the query heads q0 .. q0+nq-1 that read KV head kv. Empty (begin >= end) past the last split.
struct split_work {
  int split, unit, b, kv, nq, q0;
  std::int64_t begin, end;
};

__device__ __forceinline__ split_work split_of_block(const attend_args& a) {
  split_work w;
  w.split = blockIdx.x;
  w.unit = blockIdx.y;
  w.b = blockIdx.z;
  const std::int64_t count = attend_count(a, a.lengths[w.b]);
  w.begin = static_cast<std::int64_t>(w.split) * a.chunk;
  w.end = w.begin + a.chunk < count ? w.begin + a.chunk : count;
  const int group = a.shape.group_size();
  w.kv = a.unit_is_query_head ? w.unit / group : w.unit;
  w.nq = a.unit_is_query_head ? 1 : group;
  w.q0 = a.unit_is_query_head ? w.unit : w.unit * group;
  return w;
}

// Streams `tiles` tiles through an S-stage cp.async pipeline: load(tile, stage) issues one
// tile's copies into a stage, compute(tile, stage) consumes it once every thread's copies have
// landed; a stage is refilled S-1 tiles after it was consumed. Every thread calls it.
template <int S, class Load, class Compute>
__device__ __forceinline__ void cp_async_pipeline(int tiles, Load&& load, Compute&& compute) {
#pragma unroll
  for (int i = 0; i < S - 1; ++i) {
    if (i < tiles) load(i, i);
    cp_async_commit();
  }
  for (int tile = 0; tile < tiles; ++tile) {
    if (tile + S - 1 < tiles) load(tile + S - 1, (tile + S - 1) % S);
    cp_async_commit();
    cp_async_wait<S - 1>();  // this thread's copies of `tile` have landed
    __syncthreads();         // and everyone else's
    compute(tile, tile % S);
    __syncthreads();  // before the stage is refilled
  }
  cp_async_wait<0>();
  __syncthreads();
}

// Merges a block's `parts` partial states of each of its nq query heads (running max m and sum
// l in the log2 domain, unnormalised o; m, l: [parts][qstride], o: [parts][qstride][D], in
// shared memory) and writes the split's partial output and log-sum-exp, or the final output
// where the split is the unit's only one (attend_args::out). Every thread calls it.
template <int D>
__device__ void write_split_output(const float* sm_m, const float* sm_l, const float* sm_o,
                                   int parts, int qstride, int nq, const attend_args& a, int b,
                                   int q0, int split) {
  for (int i = threadIdx.x; i < nq * D; i += blockDim.x) {
    const int h = i / D, dim = i % D;
    float top = -INFINITY;
    for (int r = 0; r < parts; ++r) top = fmaxf(top, sm_m[r * qstride + h]);
    float den = 0.0f, num = 0.0f;
    for (int r = 0; r < parts; ++r) {
      const float mr = sm_m[r * qstride + h];
      if (mr == -INFINITY) continue;
      const float w = exp2f(mr - top);
      den += w * sm_l[r * qstride + h];
      num += w * sm_o[(r * qstride + h) * D + dim];
    }
    const std::int64_t head = static_cast<std::int64_t>(b) * a.shape.num_q_heads + q0 + h;
    if (a.out != nullptr) {
      a.out[head * D + dim] = num / den;
      continue;
    }
    a.part_o[(head * a.max_splits + split) * D + dim] = num / den;
    if (dim == 0) a.part_lse[head * a.max_splits + split] = top + log2f(den);
  }
}

inline constexpr int attend_tile = 32;   // tokens per pipeline stage
inline constexpr int attend_stages = 4;  // stages in flight

// Dynamic shared memory of attend_split: the K/V pipeline, reused for the final combine.
template <class Elem, int D, int QMAX>
constexpr int attend_smem_bytes() {
  constexpr int slots = attend_threads / (D / vec_elems<Elem>) / QMAX;
  constexpr int pipe = attend_stages * attend_tile * D * 2 * static_cast<int>(sizeof(Elem));
  constexpr int combine = slots * QMAX * (D + 2) * 4;
  return pipe > combine ? pipe : combine;
}

// grid: (max_splits, units, batch); block: attend_threads; dynamic shared memory
// attend_smem_bytes(). QMAX >= queries per unit.
template <class Elem, class St, int D, int QMAX>
__global__ __launch_bounds__(attend_threads) void attend_split(St st, const Elem* cache,
                                                               std::int64_t seq_elems,
                                                               attend_args a) {
  grid_dependency_sync();  // programmatic dependent launch (common.cuh)
  constexpr int V = vec_elems<Elem>;
  constexpr int LANES = D / V;
  constexpr int SLOTS = attend_threads / (LANES * QMAX);  // token slots per tile pass
  constexpr int TILE = attend_tile;
  constexpr int U = TILE / SLOTS;  // tokens per thread and tile
  constexpr int S = attend_stages;
  static_assert(LANES <= 32 && 32 % LANES == 0, "a key row must fit in one warp");
  static_assert(SLOTS >= 1 && TILE % SLOTS == 0, "a tile must split evenly over the slots");
  static_assert(TILE * LANES % attend_threads == 0, "a tile's copies must split evenly");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Elem* ks = reinterpret_cast<Elem*>(smem_raw);  // [S][TILE][D]
  Elem* vs = ks + S * TILE * D;                  // [S][TILE][D]

  const split_work w = split_of_block(a);
  if (w.begin >= w.end) return;
  const int split = w.split, unit = w.unit, b = w.b, kv = w.kv, nq = w.nq, q0 = w.q0;
  const std::int64_t begin = w.begin, end = w.end;
  const int lane = threadIdx.x % LANES, col = lane * V;
  const int g = threadIdx.x / LANES % QMAX;  // this thread's query head within the unit
  const int slot = threadIdx.x / (LANES * QMAX);
  const Elem* base = cache + b * seq_elems;
  const int fw = layout<St>::first_width(st);
  const int units = a.unit_is_query_head ? a.shape.num_q_heads : a.shape.num_kv_heads;
  const std::int32_t* list =
      a.gather ? a.idx + (static_cast<std::int64_t>(b) * units + unit) * a.idx_stride : nullptr;
  const int tiles = static_cast<int>((end - begin + TILE - 1) / TILE);

  // Issues the copies of tile `tile` into stage `stage`: TILE rows x LANES vectors of K and V.
  const auto load_tile = [&](int tile, int stage) {
#pragma unroll
    for (int i = 0; i < TILE * LANES / attend_threads; ++i) {
      const int item = i * attend_threads + threadIdx.x;
      const int r = item / LANES, c = (item % LANES) * V;
      const std::int64_t pos = begin + static_cast<std::int64_t>(tile) * TILE + r;
      if (pos >= end) continue;
      const std::int64_t t = list != nullptr ? list[pos] : pos;
      const Elem* k = c < fw ? base + layout<St>::first_row(st, kv, t) + c
                             : base + layout<St>::second_row(st, kv, t) + (c - fw);
      cp_async16(ks + (stage * TILE + r) * D + c, k);
      cp_async16(vs + (stage * TILE + r) * D + c, base + layout<St>::value_row(st, kv, t) + c);
    }
  };

  float q[V];
#pragma unroll
  for (int e = 0; e < V; ++e)
    q[e] =
        g < nq
            ? a.q_att[(static_cast<std::int64_t>(b) * a.shape.num_q_heads + q0 + g) * D + col + e]
            : 0.0f;
  float m = -INFINITY, l = 0.0f, o[V];
#pragma unroll
  for (int e = 0; e < V; ++e) o[e] = 0.0f;

  cp_async_pipeline<S>(tiles, load_tile, [&](int tile, int stage) {
    const Elem* kt = ks + stage * TILE * D;
    const Elem* vt = vs + stage * TILE * D;
    const std::int64_t tile_begin = begin + static_cast<std::int64_t>(tile) * TILE;
    float s[U];
    float mx = m;
#pragma unroll
    for (int uu = 0; uu < U; ++uu) {
      const int r = slot + uu * SLOTS;
      float k[V];
      to_floats<Elem>(*reinterpret_cast<const uint4*>(kt + r * D + col), k);
      float dot = 0.0f;
#pragma unroll
      for (int e = 0; e < V; ++e) dot = fmaf(q[e], k[e], dot);
#pragma unroll
      for (int off = LANES / 2; off > 0; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
      s[uu] = tile_begin + r < end ? dot : -INFINITY;
      mx = fmaxf(mx, s[uu]);
    }
    if (mx != -INFINITY) {  // else: no valid token yet for this slot
      const float scale = exp2f(m - mx);
      l *= scale;
#pragma unroll
      for (int e = 0; e < V; ++e) o[e] *= scale;
      m = mx;
#pragma unroll
      for (int uu = 0; uu < U; ++uu) {
        const int r = slot + uu * SLOTS;
        if (tile_begin + r >= end) continue;
        const float p = exp2f(s[uu] - mx);
        l += p;
        float v[V];
        to_floats<Elem>(*reinterpret_cast<const uint4*>(vt + r * D + col), v);
#pragma unroll
        for (int e = 0; e < V; ++e) o[e] = fmaf(p, v[e], o[e]);
      }
    }
  });

  // Combine the block's slots (each saw every SLOTS-th token), reusing the pipeline's memory.
  float* sm_m = reinterpret_cast<float*>(smem_raw);  // [SLOTS][QMAX]
  float* sm_l = sm_m + SLOTS * QMAX;                 // [SLOTS][QMAX]
  float* sm_o = sm_l + SLOTS * QMAX;                 // [SLOTS][QMAX][D]
  if (lane == 0) {
    sm_m[slot * QMAX + g] = m;
    sm_l[slot * QMAX + g] = l;
  }
#pragma unroll
  for (int e = 0; e < V; ++e) sm_o[(slot * QMAX + g) * D + col + e] = o[e];
  __syncthreads();
  write_split_output<D>(sm_m, sm_l, sm_o, SLOTS, QMAX, nq, a, b, q0, split);
}

// grid: (num_q_heads, batch); block: head_dim threads. out: [batch, num_q_heads, head_dim].
__global__ void merge_splits(attend_args a, float* out) {
  grid_dependency_sync();  // programmatic dependent launch (common.cuh)
  const int h = blockIdx.x, b = blockIdx.y, dim = threadIdx.x, d = a.shape.head_dim;
  const std::int64_t count = attend_count(a, a.lengths[b]);
  const int splits = static_cast<int>((count + a.chunk - 1) / a.chunk);
  const std::int64_t head = static_cast<std::int64_t>(b) * a.shape.num_q_heads + h;
  const float* lse = a.part_lse + head * a.max_splits;
  float mx = -INFINITY, den = 0.0f, num = 0.0f;  // an online log-sum-exp over the splits
#pragma unroll 8  // independent loads in flight: the merge is latency, not bandwidth
  for (int s = 0; s < splits; ++s) {
    const float ls = lse[s], os = a.part_o[(head * a.max_splits + s) * d + dim];
    const float top = fmaxf(mx, ls);
    const float old_scale = exp2f(mx - top), ws = exp2f(ls - top);
    den = den * old_scale + ws;
    num = num * old_scale + ws * os;
    mx = top;
  }
  out[head * d + dim] = num / den;
}

}  // namespace fasa::cuda::kernels
