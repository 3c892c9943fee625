// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Per-step preparation and cache writes:
//  - prepare_queries: each query head's post-RoPE query permuted into its KV head's storage
//    order (pre-scaled for exp2-based softmax), and each selection unit's scoring query: the
//    sum of the unit's queries on the dims its selector scores (FASA Eq. 6 for fasa_tip, all
//    dims for oracle_topk), zero elsewhere, also in storage order;
//  - write_tokens: fp32 keys/values into the cache at the places the storage policy names;
//  - fill_hashed: a counter-based pseudo-random cache (benchmarks; the PyTorch peer script
//    regenerates the same values from the same formula).

#include <cstdint>

#include "fasa/backends/cuda/common.cuh"
#include "fasa/policies/concepts.hpp"

namespace fasa::cuda::kernels {

// Query head h's attention query at storage position j of its KV head (qb: the sequence's
// post-RoPE queries [num_q_heads, head_dim]).
template <class St>
__device__ __forceinline__ float attention_query_at(const St& st, const attention_shape& shape,
                                                    const float* qb, int h, int j,
                                                    float att_scale) {
  return qb[h * shape.head_dim + layout<St>::dim_at(st, shape.kv_head_of(h), j)] * att_scale;
}

// Unit u's scoring query at storage position j: the sum of its queries there, times the mask.
template <class St>
__device__ __forceinline__ float scoring_query_at(const St& st, const attention_shape& shape,
                                                  selection_granularity g, const float* score_mask,
                                                  const float* qb, int u, int j) {
  const int d = shape.head_dim;
  const bool per_query = g == selection_granularity::query_head;
  const int kv = per_query ? shape.kv_head_of(u) : u;
  const int first_q = per_query ? u : u * shape.group_size();
  const int count = per_query ? 1 : shape.group_size();
  const int dim = layout<St>::dim_at(st, kv, j);
  float sum = 0.0f;
  for (int k = 0; k < count; ++k) sum += qb[(first_q + k) * d + dim];
  return sum * score_mask[u * d + j];
}

// grid: (max(num_q_heads, units), batch); block: head_dim threads.
// q, q_att: [batch, num_q_heads, head_dim]; q_tip: [batch, units, head_dim];
// score_mask: [units, head_dim] in the unit's KV head's storage order, 1 where the selector
// scores that dim (its score_dims for fasa_tip, every dim for oracle_topk), else 0; null for
// selectors that do not score (dense).
template <class St>
__global__ void prepare_queries(St st, attention_shape shape, selection_granularity g,
                                const float* score_mask, const float* q, float* q_att, float* q_tip,
                                float att_scale) {
  grid_dependency_sync();  // programmatic dependent launch (common.cuh)
  const int b = blockIdx.y, j = threadIdx.x, d = shape.head_dim;
  const float* qb = q + static_cast<std::int64_t>(b) * shape.num_q_heads * d;
  const int h = blockIdx.x;
  if (h < shape.num_q_heads)
    q_att[(static_cast<std::int64_t>(b) * shape.num_q_heads + h) * d + j] =
        attention_query_at(st, shape, qb, h, j, att_scale);
  const int units = num_selection_units(shape, g);
  const int u = blockIdx.x;
  if (score_mask == nullptr || u >= units) return;
  q_tip[(static_cast<std::int64_t>(b) * units + u) * d + j] =
      scoring_query_at(st, shape, g, score_mask, qb, u, j);
}

// Writes `count` tokens of sequence b from position t0. k_rot, v: [count, kv_heads, head_dim].
template <class Elem, class St>
__global__ void write_tokens(St st, Elem* cache, std::int64_t seq_elems, int b, std::int64_t t0,
                             std::int64_t count, const float* k_rot, const float* v) {
  const int d = st.head_dim(), heads = st.num_kv_heads();
  const std::int64_t n = count * heads * d;
  Elem* base = cache + b * seq_elems;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t t = t0 + i / (heads * d);
    const int h = static_cast<int>(i / d % heads), dim = static_cast<int>(i % d);
    base[st.key_index(h, t, dim)] = elem_traits<Elem>::from_float(k_rot[i]);
    base[st.value_index(h, t, dim)] = elem_traits<Elem>::from_float(v[i]);
  }
}

// lowbias32 (C. Wellons' hash prospector): a 32-bit integer hash with good avalanche.
__host__ __device__ constexpr std::uint32_t hash32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// The value at element `index` of plane `plane`: uniform in [-1, 1) on a 2^-23 grid. A plane is
// one (tensor, sequence, head); benchmarks/cuda/peers.py computes the same formula in PyTorch.
__host__ __device__ constexpr float hashed_uniform(std::uint32_t seed, std::uint32_t plane,
                                                   std::uint32_t index) {
  const std::uint32_t x = hash32(index ^ hash32(plane + seed * 0x9e3779b9U));
  return static_cast<float>(x >> 8) * (1.0f / 8388608.0f) - 1.0f;
}

// Planes of the hashed benchmark tensors: keys, values and queries.
enum class hashed_tensor : std::uint32_t { key = 0, value = 1, query = 2 };

__host__ __device__ constexpr std::uint32_t hashed_plane(hashed_tensor which, int b, int h,
                                                         int batch, int heads) {
  return (static_cast<std::uint32_t>(which) * static_cast<std::uint32_t>(batch) +
          static_cast<std::uint32_t>(b)) *
             static_cast<std::uint32_t>(heads) +
         static_cast<std::uint32_t>(h);
}

// A batch's caches in one buffer: sequence b's element `index` at base + b * seq_elems + index.
// (FASA-M's two tiers, kernels::tiers in offload.cuh, answer the same at().)
template <class Elem>
struct flat_cache {
  Elem* base = nullptr;
  std::int64_t seq_elems = 0;
  __host__ __device__ Elem* at(int b, std::int64_t index) const {
    return base + b * seq_elems + index;
  }
};

// Fills tokens [0, lengths[b]) of every sequence: K[b][h][t][dim] (natural dims) at
// hashed_uniform(seed, plane(key, b, h), t * head_dim + dim), V likewise, each element where
// cache.at(b, index) puts it. grid: (x, kv_heads, batch).
template <class Elem, class St, class Cache>
__global__ void fill_hashed(St st, Cache cache, const int* lengths, int batch, std::uint32_t seed) {
  const int b = blockIdx.z, h = blockIdx.y, d = st.head_dim();
  const std::int64_t n = static_cast<std::int64_t>(lengths[b]) * d;
  const int heads = st.num_kv_heads();
  const std::uint32_t kp = hashed_plane(hashed_tensor::key, b, h, batch, heads);
  const std::uint32_t vp = hashed_plane(hashed_tensor::value, b, h, batch, heads);
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t t = i / d;
    const int dim = static_cast<int>(i % d);
    const auto idx = static_cast<std::uint32_t>(i);
    *cache.at(b, st.key_index(h, t, dim)) =
        elem_traits<Elem>::from_float(hashed_uniform(seed, kp, idx));
    *cache.at(b, st.value_index(h, t, dim)) =
        elem_traits<Elem>::from_float(hashed_uniform(seed, vp, idx));
  }
}

}  // namespace fasa::cuda::kernels
