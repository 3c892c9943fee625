// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// TopK-I (FASA Eq. 7) per row of scores: a most-significant-digit radix select, one block per
// row, never a sort. Scores map to unsigned keys whose order is the float order (NaN lowest, as
// in fasa/core/topk.hpp). Each pass histograms one digit of the remaining candidates in shared
// memory, finds the digit value that holds the k-th best, writes every candidate above it to
// the output, and keeps those on it as the next pass's candidates (so only the first pass reads
// the whole row; the later ones read a few survivors). Three passes cover the 32-bit key
// (12 + 12 + 8 bits); survivors of all three have equal scores, and three more passes over
// their inverted indices keep the lowest indices among them: the tie rule of the CPU top-k, so
// selections match it exactly up to rounding of the scores themselves.
//
// Output: per row, keep(n) token indices in no particular order. When keep(n) >= n it is
// 0 .. n-1 (the whole cache).

#include <cub/block/block_scan.cuh>

#include <cstdint>

#include "fasa/backends/cuda/common.cuh"
#include "fasa/core/budget.hpp"

namespace fasa::cuda::kernels {

inline constexpr int topk_threads = 512;

__device__ __forceinline__ std::uint32_t ordered_key(float s) {
  const std::uint32_t u = __float_as_uint(s);
  if (isnan(s)) return 0u;
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

struct topk_args {
  const float* scores;  // [rows, score_stride]
  std::int64_t score_stride;
  const int* lengths;  // [batch]; row r belongs to sequence r / units
  int units;
  token_budget budget = token_budget::all();
  std::int32_t* out;  // [rows, out_stride]
  std::int64_t out_stride;
  std::int32_t* cand;  // scratch [rows, 2, cand_stride]
  std::int64_t cand_stride;
};

// grid: rows; block: topk_threads.
__global__ __launch_bounds__(topk_threads) void topk_radix_select(topk_args a) {
  constexpr int T = topk_threads;
  constexpr int MAX_BINS = 4096;
  using scan = cub::BlockScan<unsigned, T>;
  __shared__ typename scan::TempStorage scan_storage;
  __shared__ unsigned hist[MAX_BINS];
  __shared__ unsigned s_out, s_count[2], s_bin, s_above;

  const std::int64_t row = blockIdx.x;
  const int b = static_cast<int>(row / a.units);
  const std::int64_t n = a.lengths[b];
  const std::int64_t k = a.budget.keep(n);
  const float* s = a.scores + row * a.score_stride;
  std::int32_t* out = a.out + row * a.out_stride;
  if (k >= n) {
    for (std::int64_t i = threadIdx.x; i < n; i += T) out[i] = static_cast<std::int32_t>(i);
    return;
  }
  std::int32_t* cand[2] = {a.cand + row * 2 * a.cand_stride,
                           a.cand + row * 2 * a.cand_stride + a.cand_stride};
  if (threadIdx.x == 0) s_out = 0;

  std::int64_t need = k, count = n;
  int cur = -1;  // -1: the candidates are all of [0, n)
#pragma unroll 1
  for (int pass = 0; pass < 6; ++pass) {
    // passes 0-2: the score's key, bits 31-20, 19-8, 7-0; passes 3-5: the same of ~index
    const int shift = pass % 3 == 0 ? 20 : pass % 3 == 1 ? 8 : 0;
    const unsigned bins = pass % 3 == 2 ? 256u : 4096u;
    const auto digit_of = [&](std::int32_t i) -> unsigned {
      const std::uint32_t key = pass < 3 ? ordered_key(s[i]) : ~static_cast<std::uint32_t>(i);
      return (key >> shift) & (bins - 1u);
    };
    const auto item = [&](std::int64_t e) -> std::int32_t {
      return cur < 0 ? static_cast<std::int32_t>(e) : cand[cur][e];
    };
    for (unsigned i = threadIdx.x; i < bins; i += T) hist[i] = 0;
    __syncthreads();
    for (std::int64_t e = threadIdx.x; e < count; e += T) atomicAdd(&hist[digit_of(item(e))], 1u);
    __syncthreads();
    // Thread r owns `per` bins counted from the top; an exclusive scan over threads gives the
    // number of candidates in all higher bins, then each thread walks its own bins downwards.
    const unsigned per = bins >= T ? bins / T : 1u;
    const unsigned top = bins - threadIdx.x * per;  // this thread's bins: [top - per, top)
    const bool owns = threadIdx.x * per < bins;
    unsigned local = 0;
    if (owns)
      for (unsigned j = 0; j < per; ++j) local += hist[top - 1 - j];
    unsigned above_mine = 0;
    scan(scan_storage).ExclusiveSum(local, above_mine);
    if (owns) {
      unsigned cum = above_mine;
      for (unsigned j = 0; j < per; ++j) {
        const unsigned bin = top - 1 - j;
        if (cum < need && cum + hist[bin] >= need) {
          s_bin = bin;
          s_above = cum;
        }
        cum += hist[bin];
      }
    }
    const int next = cur < 0 ? 0 : 1 - cur;
    if (threadIdx.x == 0) s_count[next] = 0;
    __syncthreads();
    const unsigned bin = s_bin;
    for (std::int64_t e = threadIdx.x; e < count; e += T) {
      const std::int32_t i = item(e);
      const unsigned dgt = digit_of(i);
      if (dgt > bin)
        out[atomicAdd(&s_out, 1u)] = i;
      else if (dgt == bin)
        cand[next][atomicAdd(&s_count[next], 1u)] = i;
    }
    __syncthreads();
    need -= s_above;
    count = s_count[next];
    cur = next;
    if (need == count) {  // every survivor is in: copy them and stop
      const unsigned done = s_out;
      for (std::int64_t e = threadIdx.x; e < count; e += T) out[done + e] = cand[cur][e];
      return;
    }
    __syncthreads();  // s_bin, s_above and hist are rewritten by the next pass
  }
}

}  // namespace fasa::cuda::kernels
