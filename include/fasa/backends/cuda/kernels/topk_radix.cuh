// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// TopK-I (FASA Eq. 7) per row of scores: a most-significant-digit radix select, never a sort.
// Scores map to unsigned keys whose order is the float order (NaN lowest, as fasa/core/topk.hpp).
//  1. The histogram of the keys' top 10 bits is built while the scores are made (tip_scores),
//     whose last block per KV head finds the bin that holds the k-th best (find_bin).
//  2. topk_filter, many blocks per row: writes every token of a higher bin to the output and
//     every token of that bin to a candidate list (the only full pass over the scores).
//  3. topk_finish, one block per row: radix passes over the few candidates only (11 + 11 more
//     key bits); survivors of all of them have equal scores, and passes over their inverted
//     indices keep the lowest indices: the tie rule of the CPU top-k, so selections match it up
//     to the rounding of the scores themselves.
// Output: per row, keep(n) token indices in no particular order; 0 .. n-1 when keep(n) >= n.

#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>

#include <cstdint>

#include "fasa/backends/cuda/common.cuh"
#include "fasa/core/budget.hpp"

namespace fasa::cuda::kernels {

inline constexpr int topk_hist_bits = 10;  // the first pass's digit: the key's top bits
inline constexpr int topk_hist_bins = 1 << topk_hist_bits;

__device__ __forceinline__ std::uint32_t ordered_key(float s) {
  const std::uint32_t u = __float_as_uint(s);
  if (isnan(s)) return 0u;
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ unsigned first_digit(float s) {
  return ordered_key(s) >> (32 - topk_hist_bits);
}

// Per-row fields of topk_args::counts, written by tip_scores' last block and used by the filter.
inline constexpr int topk_written = 0;     // tokens written to out (from 0)
inline constexpr int topk_candidates = 1;  // candidates written (from 0)
inline constexpr int topk_bin = 2;         // the first digit's bin that holds the k-th best
inline constexpr int topk_above = 3;       // tokens in higher bins
inline constexpr int topk_count_fields = 4;

struct topk_args {
  const float* scores;  // [rows, score_stride]
  std::int64_t score_stride;
  const int* lengths;  // [batch]; row r belongs to sequence r / units
  int units;
  token_budget budget = token_budget::all();
  unsigned* counts;   // [rows, topk_count_fields]
  std::int32_t* out;  // [rows, out_stride]
  std::int64_t out_stride;
  std::int32_t* cand;  // scratch [rows, 2, cand_stride]
  std::int64_t cand_stride;
};

// Finds, among `bins` histogram bins (hist(i) gives bin i's count), the bin B holding the
// need-th best item counting from the top, and the number of items above it. Every thread of
// the block must call it; T threads, each owning bins/T bins (or one).
template <int T, class Hist>
__device__ void find_bin(unsigned bins, Hist hist, std::int64_t need, unsigned& bin,
                         unsigned& above) {
  using scan = cub::BlockScan<unsigned, T>;
  __shared__ typename scan::TempStorage storage;
  __shared__ unsigned s_bin, s_above;
  const unsigned per = bins >= T ? bins / T : 1u;
  const unsigned top = bins - threadIdx.x * per;  // this thread's bins: [top - per, top)
  const bool owns = threadIdx.x * per < bins;
  unsigned local = 0;
  if (owns)
    for (unsigned j = 0; j < per; ++j) local += hist(top - 1 - j);
  unsigned above_mine = 0;
  scan(storage).ExclusiveSum(local, above_mine);
  if (owns) {
    unsigned cum = above_mine;
    for (unsigned j = 0; j < per; ++j) {
      const unsigned b = top - 1 - j;
      const unsigned c = hist(b);
      if (cum < need && cum + c >= need) {
        s_bin = b;
        s_above = cum;
      }
      cum += c;
    }
  }
  __syncthreads();
  bin = s_bin;
  above = s_above;
  __syncthreads();
}

// Appends the lanes whose `pred` holds to a list through one atomic per warp; returns each
// such lane's slot. Every lane of the warp must call it.
__device__ __forceinline__ unsigned warp_append(unsigned* counter, bool pred) {
  const unsigned mask = __ballot_sync(0xffffffffu, pred);
  const unsigned lane = threadIdx.x & 31u;
  unsigned base = 0;
  if (lane == 0 && mask != 0) base = atomicAdd(counter, static_cast<unsigned>(__popc(mask)));
  base = __shfl_sync(0xffffffffu, base, 0);
  return base + static_cast<unsigned>(__popc(mask & ((1u << lane) - 1u)));
}

inline constexpr int topk_filter_threads = 256;

// grid: (blocks per row, rows).
__global__ __launch_bounds__(topk_filter_threads) void topk_filter(topk_args a) {
  grid_dependency_sync();  // programmatic dependent launch (common.cuh)
  constexpr int T = topk_filter_threads;
  const std::int64_t row = blockIdx.y;
  const std::int64_t n = a.lengths[row / a.units];
  const std::int64_t k = a.budget.keep(n);
  std::int32_t* out = a.out + row * a.out_stride;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * T;
  if (k >= n) {
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(T) + threadIdx.x; i < n;
         i += stride)
      out[i] = static_cast<std::int32_t>(i);
    return;
  }
  unsigned* counts = a.counts + row * topk_count_fields;
  const unsigned bin = counts[topk_bin];
  const float* s = a.scores + row * a.score_stride;  // 16-byte aligned (score_stride % 4 == 0)
  std::int32_t* cand = a.cand + row * 2 * a.cand_stride;
  constexpr int UNROLL = 2;  // float4 loads in flight per thread
  const std::int64_t n4 = (n + 3) / 4;
  // Uniform trip counts across the warp (warp_append needs every lane).
  for (std::int64_t i0 = blockIdx.x * static_cast<std::int64_t>(T) * UNROLL; i0 < n4;
       i0 += stride * UNROLL) {
    float4 v[UNROLL];
#pragma unroll
    for (int r = 0; r < UNROLL; ++r) {
      const std::int64_t i4 = i0 + r * T + threadIdx.x;
      v[r] = i4 < n4 ? reinterpret_cast<const float4*>(s)[i4] : make_float4(0, 0, 0, 0);
    }
#pragma unroll
    for (int r = 0; r < UNROLL; ++r) {
      const std::int64_t i4 = i0 + r * T + threadIdx.x;
      const float e4[4] = {v[r].x, v[r].y, v[r].z, v[r].w};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const std::int64_t i = i4 * 4 + e;
        const bool valid = i4 < n4 && i < n;
        const unsigned d = first_digit(e4[e]);
        // Almost every token is below the bin: one vote skips the appends for the warp.
        if (!__any_sync(0xffffffffu, valid && d >= bin)) continue;
        const unsigned o = warp_append(&counts[topk_written], valid && d > bin);
        if (valid && d > bin) out[o] = static_cast<std::int32_t>(i);
        const unsigned c = warp_append(&counts[topk_candidates], valid && d == bin);
        if (valid && d == bin) cand[c] = static_cast<std::int32_t>(i);
      }
    }
  }
}

inline constexpr int topk_finish_threads = 512;

// grid: rows. Narrows the candidate list of each row down to exactly keep(n) - (tokens above).
__global__ __launch_bounds__(topk_finish_threads) void topk_finish(topk_args a) {
  grid_dependency_sync();  // programmatic dependent launch (common.cuh)
  constexpr int T = topk_finish_threads;
  constexpr unsigned MAX_BINS = 4096;
  __shared__ unsigned hist_s[MAX_BINS];
  __shared__ unsigned s_out, s_count[2];
  const std::int64_t row = blockIdx.x;
  const std::int64_t n = a.lengths[row / a.units];
  const std::int64_t k = a.budget.keep(n);
  if (k >= n) return;
  const unsigned* counts = a.counts + row * topk_count_fields;
  unsigned bin = 0, above = counts[topk_above];
  const float* s = a.scores + row * a.score_stride;
  std::int32_t* out = a.out + row * a.out_stride;
  std::int32_t* cand[2] = {a.cand + row * 2 * a.cand_stride,
                           a.cand + row * 2 * a.cand_stride + a.cand_stride};
  std::int64_t need = k - above;
  std::int64_t count = counts[topk_candidates];
  if (threadIdx.x == 0) s_out = above;
  __syncthreads();
  int cur = 0;
  // passes 0-1: the score key's bits 21-11 and 10-0; passes 2-4: ~index, bits 31-20, 19-8, 7-0
#pragma unroll 1
  for (int pass = 0; pass < 5 && need < count; ++pass) {
    const bool by_score = pass < 2;
    const int shift = pass == 0 ? 11 : pass == 1 ? 0 : pass == 2 ? 20 : pass == 3 ? 8 : 0;
    const unsigned bins = by_score ? 2048u : pass == 4 ? 256u : 4096u;
    const auto digit_of = [&](std::int32_t i) -> unsigned {
      const std::uint32_t key = by_score ? ordered_key(s[i]) : ~static_cast<std::uint32_t>(i);
      return (key >> shift) & (bins - 1u);
    };
    for (unsigned i = threadIdx.x; i < bins; i += T) hist_s[i] = 0;
    __syncthreads();
    for (std::int64_t e = threadIdx.x; e < count; e += T)
      atomicAdd(&hist_s[digit_of(cand[cur][e])], 1u);
    __syncthreads();
    find_bin<T>(
        bins, [&](unsigned i) { return hist_s[i]; }, need, bin, above);
    const int next = 1 - cur;
    if (threadIdx.x == 0) s_count[next] = 0;
    __syncthreads();
    for (std::int64_t e = threadIdx.x; e < count; e += T) {
      const std::int32_t i = cand[cur][e];
      const unsigned d = digit_of(i);
      if (d > bin)
        out[atomicAdd(&s_out, 1u)] = i;
      else if (d == bin)
        cand[next][atomicAdd(&s_count[next], 1u)] = i;
    }
    __syncthreads();
    need -= above;
    count = s_count[next];
    cur = next;
    __syncthreads();
  }
  // need == count: every remaining candidate is in
  const unsigned done = s_out;
  for (std::int64_t e = threadIdx.x; e < count; e += T) out[done + e] = cand[cur][e];
}

// ---- the kept tokens in ascending order -----------------------------------------------------
//
// The top-k hands out its output places by atomics, so a unit's kept tokens come out in an
// order that changes from run to run, and the attention sums them in that order: outputs equal
// to rounding only, and a model's perplexity that moves in its fourth digit between two runs.
// sort_kept puts each unit's list in ascending token order (split_options::sort_selection):
// outputs the same bit for bit from run to run, and FASA-M's equal to FASA-C's.

constexpr int sort_threads = 256;
// The longest list sort_kept sorts (sort_threads x 32 items); longer lists stay as they are.
constexpr std::int64_t sort_max_kept = sort_threads * 32;

// grid: rows (sequence-major units); block: sort_threads. Row r's first budget.keep(length)
// entries (tokens below 2^end_bit) in ascending order, in place.
template <int ITEMS>
__global__ void __launch_bounds__(sort_threads)
    sort_kept(std::int32_t* idx, std::int64_t stride, const int* lengths, int units,
              token_budget budget, int end_bit) {
  grid_dependency_sync();
  using sorter = cub::BlockRadixSort<int, sort_threads, ITEMS>;
  __shared__ typename sorter::TempStorage tmp;
  const std::int64_t row = blockIdx.x;
  const std::int64_t keep = budget.keep(lengths[row / units]);
  std::int32_t* list = idx + row * stride;
  int keys[ITEMS];
  for (int i = 0; i < ITEMS; ++i) {  // blocked: thread t holds entries t*ITEMS .. +ITEMS-1
    const std::int64_t j = std::int64_t{threadIdx.x} * ITEMS + i;
    keys[i] = j < keep ? list[j] : 0x7fffffff;  // all low bits set: after every token (stable)
  }
  sorter(tmp).Sort(keys, 0, end_bit);
  for (int i = 0; i < ITEMS; ++i) {
    const std::int64_t j = std::int64_t{threadIdx.x} * ITEMS + i;
    if (j < keep) list[j] = keys[i];
  }
}

}  // namespace fasa::cuda::kernels
