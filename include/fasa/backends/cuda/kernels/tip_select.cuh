// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// TIP and TopK-I (FASA Eqs. 6-7) as one kernel: a thread block cluster per (sequence, KV head)
// scores the head's cached tokens and selects each unit's keep(n) best, with no global
// synchronisation between the two and no second kernel. The split path (tip_scores, then
// topk_filter and topk_finish: tip_scores.cuh, topk_radix.cuh) hands a step between three
// kernels, each a grid-wide dependency whose latency the step pays; here the cluster's blocks
// meet at cluster barriers instead and read each other's counts from distributed shared memory.
//
//  1. Block r of the C in the cluster streams the contiguous run r of the KV head's rows
//     (ceil(n / C) tokens, rounded up to a pass), scores them (tip_lanes_pass: the same math and
//     emitted scores as tip_scores_lanes) and histograms the scores' first radix digit.
//  2. Cluster barrier. Every block sums the C histograms (distributed shared memory) and finds
//     each unit's bin of the k-th best: the same bin in every block.
//  3. Each block re-reads its own scores (just written, from L2): tokens of higher bins go to the
//     output (one global counter per unit), tokens of the bin to the block's candidate list.
//  4. While a unit has more candidates than it still needs, a pass over the candidates'
//     next digit: local histograms, cluster barrier, summed histograms, the bin of the still
//     needed, a partition. Digits: the score key's bits 21-14, 13-6, 5-0 (after the first
//     digit's 31-22), then the inverted index's 31-24 .. 7-0, so equal scores keep the lowest
//     indices: the tie rule of the CPU top-k, as topk_finish.
//  5. Each unit's remaining candidates are in; a last cluster barrier keeps every block's shared
//     memory alive until the others are done reading it.
// Output as topk_finish: per row, keep(n) token indices in no particular order; 0 .. n-1 when
// keep(n) >= n. The scores are written as by tip_scores (batch_decoder::scores reads them).

#include <cstdint>

#include "fasa/backends/cuda/common.cuh"
#include "fasa/backends/cuda/kernels/prepare.cuh"
#include "fasa/backends/cuda/kernels/tip_scores.cuh"
#include "fasa/backends/cuda/kernels/topk_radix.cuh"

namespace fasa::cuda::kernels {

inline constexpr int select_bins = 256;     // bins of a refinement pass's digit (8 bits or fewer)
inline constexpr int select_passes = 7;     // 3 over the score key's last 22 bits, 4 over ~index
inline constexpr int select_max_units = 4;  // units per KV head this kernel serves (shared memory)

// Pass p's digit of a candidate (token t, score s).
__device__ __forceinline__ unsigned select_digit(int pass, float s, std::int32_t t) {
  if (pass < 3) {
    const int shift = pass == 0 ? 14 : pass == 1 ? 6 : 0;
    return (ordered_key(s) >> shift) & (pass == 2 ? 63u : 255u);
  }
  return (~static_cast<std::uint32_t>(t) >> (24 - 8 * (pass - 3))) & 255u;
}

// The cluster's total of `bins` counts (each block's at `local`, the same shared-memory offset
// in every block) into tot_s, and the bin that holds the need-th best. Every thread calls it.
template <int T>
__device__ void cluster_find_bin(const unsigned* local, unsigned bins, unsigned blocks,
                                 std::int64_t need, unsigned* tot_s, unsigned& bin, unsigned& above,
                                 unsigned& in_bin) {
  for (unsigned i = threadIdx.x; i < bins; i += T) {
    unsigned sum = 0;
    for (unsigned r = 0; r < blocks; ++r) sum += cluster_load(local + i, r);
    tot_s[i] = sum;
  }
  __syncthreads();
  find_bin<T>(
      bins, [&](unsigned i) { return tot_s[i]; }, need, bin, above);
  in_bin = tot_s[bin];
  __syncthreads();  // tot_s is refilled by the next call
}

// Where the selection goes (topk_args' fields the split path's filter and finish use).
struct select_out {
  unsigned* counts;   // [rows, topk_count_fields]: topk_written is the output counter
  std::int32_t* out;  // [rows, out_stride]
  std::int64_t out_stride;
  std::int32_t* cand;  // scratch [rows, 2, cand_stride]: block r's lists start at its first token
  std::int64_t cand_stride;
};

// The queries, raw: the kernel does prepare_queries' work for its KV head itself (one launch
// fewer per step). tip_args::q_tip is not read.
struct select_queries {
  const float* q;           // [batch, num_q_heads, head_dim] post-RoPE
  const float* score_mask;  // [units, head_dim] (prepare_queries)
  float* q_att;             // [batch, num_q_heads, head_dim]: written for the attention kernel
  float att_scale;
};

// grid: (C, kv_heads, batch) with clusters of (C, 1, 1); block as tip_scores. UMAX >= units per
// KV head, at most select_max_units.
template <class Elem, class St, int D, int UMAX, int LPR>
__global__ __launch_bounds__(tip_threads) void tip_select_cluster(St st, const Elem* cache,
                                                                  std::int64_t seq_elems,
                                                                  tip_args a, select_out o,
                                                                  select_queries sq) {
  static_assert(UMAX <= select_max_units, "tip_select_cluster: too many units per KV head");
  grid_dependency_sync();  // programmatic dependent launch (common.cuh)
  constexpr int T = tip_threads;
  constexpr int V = vec_elems<Elem>;
  constexpr int RPT = tip_lane_rows;
  constexpr int ROWS = T / LPR;
  constexpr int PASS = ROWS * RPT;  // rows per load pass of the block
  __shared__ float q_s[UMAX * D];
  __shared__ unsigned hist_s[UMAX * topk_hist_bins];  // this block's first digits
  __shared__ unsigned part_s[2][UMAX * select_bins];  // this block's digits of a pass
  __shared__ unsigned tot_s[topk_hist_bins];          // the cluster's sums, one unit at a time
  __shared__ unsigned s_cand[2][UMAX];                // this block's candidates per list
  __shared__ unsigned s_bin[UMAX], s_above[UMAX], s_in_bin[UMAX];
  __shared__ long long s_need[UMAX], s_count[UMAX];  // the cluster's, per unit
  __shared__ int s_cur[UMAX];                        // the list holding a unit's candidates
  const unsigned rank = cluster_rank(), blocks = cluster_blocks();
  const int b = blockIdx.z, h = blockIdx.y;
  const tip_units tu = tip_units_of(a, h);
  const std::int64_t n = a.lengths[b];
  const std::int64_t k = a.budget.keep(n);
  const bool select = k < n;
  const std::int64_t row0 = static_cast<std::int64_t>(b) * tu.units + tu.unit0;
  // The output counters: zero before the first cluster barrier, after which blocks append.
  if (rank == 0 && threadIdx.x < tu.nu)
    o.counts[(row0 + threadIdx.x) * topk_count_fields + topk_written] = 0u;
  for (int i = threadIdx.x; i < 2 * UMAX * select_bins; i += T) (&part_s[0][0])[i] = 0u;
  if (threadIdx.x < UMAX) s_cand[0][threadIdx.x] = s_cand[1][threadIdx.x] = 0u;
  // The units' scoring queries (as prepare_queries), the histogram zeroed; block 0 also
  // writes the KV head's attention queries.
  const float* qb = sq.q + static_cast<std::int64_t>(b) * a.shape.num_q_heads * D;
  for (int i = threadIdx.x; i < UMAX * D; i += T) {
    const int u = i / D, j = i % D;
    q_s[i] = u < tu.nu
                 ? scoring_query_at(st, a.shape, a.granularity, sq.score_mask, qb, tu.unit0 + u, j)
                 : 0.0f;
  }
  if (rank == 0) {
    const int group = a.shape.group_size();
    for (int i = threadIdx.x; i < group * D; i += T) {
      const int q_head = h * group + i / D;
      sq.q_att[(static_cast<std::int64_t>(b) * a.shape.num_q_heads + q_head) * D + i % D] =
          attention_query_at(st, a.shape, qb, q_head, i % D, sq.att_scale);
    }
  }
  for (int i = threadIdx.x; i < UMAX * topk_hist_bins; i += T) hist_s[i] = 0u;
  __syncthreads();

  // 1. This block's run of rows, [lo, hi): whole passes, so no row is scored twice.
  const std::int64_t per = (n + blocks - 1) / blocks;
  const std::int64_t chunk = (per + PASS - 1) / PASS * PASS;
  const std::int64_t lo = n < rank * chunk ? n : rank * chunk;
  const std::int64_t hi = n - lo < chunk ? n : lo + chunk;
  const Elem* base = cache + b * seq_elems;
  const int fw = layout<St>::first_width(st);
  const int col = threadIdx.x % LPR * V, r_in = threadIdx.x / LPR;
  float* scores = a.scores + row0 * a.score_stride;
  float qc[UMAX][V];
  tip_lane_query<D>(q_s, col, qc);
  for (std::int64_t t0 = lo; t0 < hi; t0 += PASS) {
    uint4 raw[RPT];
#pragma unroll
    for (int i = 0; i < RPT; ++i) {
      const std::int64_t t = t0 + i * ROWS + r_in;
      if (t < hi) raw[i] = load_raw(tip_lane_row(st, base, h, col, fw, t));
    }
    tip_lanes_pass<Elem, UMAX, LPR>(a, tu, scores, hist_s, select, n, t0, qc, raw);
  }
  __syncthreads();  // the block's scores and histogram are complete
  if (!select) {    // the unit keeps every token (no shared memory was shared)
    for (int u = 0; u < tu.nu; ++u)
      for (std::int64_t t = lo + threadIdx.x; t < hi; t += T)
        o.out[(row0 + u) * o.out_stride + t] = static_cast<std::int32_t>(t);
    return;
  }

  // 2. The bin of the k-th best per unit, from the cluster's histograms.
  cluster_sync();
  for (int u = 0; u < tu.nu; ++u) {
    unsigned bin = 0, above = 0, in_bin = 0;
    cluster_find_bin<T>(hist_s + u * topk_hist_bins, topk_hist_bins, blocks, k, tot_s, bin, above,
                        in_bin);
    if (threadIdx.x == 0) {
      s_bin[u] = bin;
      s_need[u] = k - above;
      s_count[u] = in_bin;
      s_cur[u] = 0;
    }
  }
  __syncthreads();

  // 3. This block's tokens: above the bin out, in it to candidate list 0.
  const auto out_of = [&](int u) { return o.out + (row0 + u) * o.out_stride; };
  const auto written_of = [&](int u) {
    return o.counts + (row0 + u) * topk_count_fields + topk_written;
  };
  const auto list_of = [&](int u, int l) {
    return o.cand + ((row0 + u) * 2 + l) * o.cand_stride + lo;
  };
  constexpr int UNROLL = 4;  // float4 loads in flight per thread
  for (int u = 0; u < tu.nu; ++u) {
    const unsigned bin = s_bin[u];
    const float* s = scores + u * a.score_stride;
    for (std::int64_t i0 = lo; i0 < hi; i0 += 4 * T * UNROLL) {  // lo: a multiple of 4
      float4 v[UNROLL];
#pragma unroll
      for (int r = 0; r < UNROLL; ++r) {
        const std::int64_t i = i0 + (r * T + threadIdx.x) * 4;
        v[r] = i < hi ? *reinterpret_cast<const float4*>(s + i) : make_float4(0, 0, 0, 0);
      }
#pragma unroll
      for (int r = 0; r < UNROLL; ++r) {
        const float e4[4] = {v[r].x, v[r].y, v[r].z, v[r].w};
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const std::int64_t t = i0 + (r * T + threadIdx.x) * 4 + e;
          const bool valid = t < hi;
          const unsigned d = first_digit(e4[e]);
          if (!__any_sync(0xffffffffu, valid && d >= bin)) continue;
          const unsigned w = warp_append(written_of(u), valid && d > bin);
          if (valid && d > bin) out_of(u)[w] = static_cast<std::int32_t>(t);
          const unsigned c = warp_append(&s_cand[0][u], valid && d == bin);
          if (valid && d == bin) list_of(u, 0)[c] = static_cast<std::int32_t>(t);
        }
      }
    }
  }
  __syncthreads();

  // 4. Narrow the units whose bin holds more candidates than they still need.
#pragma unroll 1
  for (int pass = 0; pass < select_passes; ++pass) {
    bool more = false;
    for (int u = 0; u < tu.nu; ++u) more = more || s_need[u] < s_count[u];
    if (!more) break;  // the same in every block: the counts are the cluster's
    // This pass's buffer was last read by other blocks two passes ago, before they reached
    // the last pass's barrier.
    unsigned* part = part_s[pass & 1];
    for (int i = threadIdx.x; i < UMAX * select_bins; i += T) part[i] = 0u;
    __syncthreads();
    for (int u = 0; u < tu.nu; ++u) {
      if (s_need[u] >= s_count[u]) continue;
      const std::int32_t* list = list_of(u, s_cur[u]);
      const float* s = scores + u * a.score_stride;
      for (unsigned e = threadIdx.x; e < s_cand[s_cur[u]][u]; e += T) {
        const std::int32_t t = list[e];
        atomicAdd(&part[u * select_bins + select_digit(pass, s[t], t)], 1u);
      }
    }
    __syncthreads();
    cluster_sync();
    for (int u = 0; u < tu.nu; ++u) {
      if (s_need[u] >= s_count[u]) continue;
      unsigned bin = 0, above = 0, in_bin = 0;
      cluster_find_bin<T>(part + u * select_bins, pass == 2 ? 64u : 256u, blocks, s_need[u], tot_s,
                          bin, above, in_bin);
      if (threadIdx.x == 0) {
        s_bin[u] = bin;
        s_above[u] = above;
        s_in_bin[u] = in_bin;
        s_cand[1 - s_cur[u]][u] = 0u;
      }
    }
    __syncthreads();
    for (int u = 0; u < tu.nu; ++u) {
      if (s_need[u] >= s_count[u]) continue;
      const int cur = s_cur[u];
      const std::int32_t* list = list_of(u, cur);
      std::int32_t* next = list_of(u, 1 - cur);
      const float* s = scores + u * a.score_stride;
      const unsigned count = s_cand[cur][u], bin = s_bin[u];
      for (unsigned e0 = 0; e0 < count; e0 += T) {  // uniform trip counts (warp_append)
        const unsigned e = e0 + threadIdx.x;
        const std::int32_t t = e < count ? list[e] : 0;
        const unsigned d = e < count ? select_digit(pass, s[t], t) : 0u;
        const unsigned w = warp_append(written_of(u), e < count && d > bin);
        if (e < count && d > bin) out_of(u)[w] = t;
        const unsigned c = warp_append(&s_cand[1 - cur][u], e < count && d == bin);
        if (e < count && d == bin) next[c] = t;
      }
    }
    __syncthreads();
    if (threadIdx.x == 0)
      for (int u = 0; u < tu.nu; ++u) {
        if (s_need[u] >= s_count[u]) continue;
        s_need[u] -= s_above[u];
        s_count[u] = s_in_bin[u];
        s_cur[u] = 1 - s_cur[u];
      }
    __syncthreads();
  }

  // 5. Every unit needs all of its remaining candidates.
  for (int u = 0; u < tu.nu; ++u) {
    const std::int32_t* list = list_of(u, s_cur[u]);
    const unsigned count = s_cand[s_cur[u]][u];
    for (unsigned e0 = 0; e0 < count; e0 += T) {
      const unsigned e = e0 + threadIdx.x;
      const unsigned w = warp_append(written_of(u), e < count);
      if (e < count) out_of(u)[w] = list[e];
    }
  }
  cluster_sync();  // no block leaves while another may still read its shared memory
}

}  // namespace fasa::cuda::kernels
