// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// TIP and TopK-I (FASA Eqs. 6-7) as one kernel: a thread block cluster per (sequence, KV head)
// scores the head's cached tokens and selects each unit's keep(n) best, with no global
// synchronisation between the two and no second kernel. The split path (prepare_queries,
// tip_scores, then topk_filter and topk_finish: prepare.cuh, tip_scores.cuh, topk_radix.cuh)
// hands a step between four kernels, each a grid-wide dependency whose latency the step pays;
// here the cluster's blocks meet at cluster barriers instead and count into block 0's shared
// memory (distributed shared memory).
//
//  0. Each block makes its units' scoring queries from the raw queries (prepare_queries' math);
//     block 0 also writes the KV head's attention queries for the attention kernel.
//  1. Block r of the C in the cluster streams the contiguous run r of the KV head's rows
//     (ceil(n / C) tokens, rounded up to a pass), scores them (tip_lanes_pass: the same math and
//     emitted scores as tip_scores_lanes) and histograms the scores' first radix digit in its
//     own shared memory, then adds its nonzero bins into block 0's.
//  2. Cluster barrier. Every block reads block 0's histograms and finds each unit's bin of the
//     k-th best: the same bin in every block. Or, in clusters of at least `lead_from` blocks,
//     block 0 alone finds each bin and writes it into every block, and a second barrier
//     publishes it (cluster_find_bins).
//  3. Each block re-reads its own scores (just written, from L2): tokens of higher bins go to the
//     output, tokens of the bin to the block's candidate list; places in both handed out by one
//     block-wide scan and one atomic per list for every 2,048 tokens.
//  4. While a unit has more candidates than it still needs, a pass over the candidates'
//     next digit: adds into block 0's histogram of the pass, cluster barrier, the bin of the
//     still needed (found as in 2), a partition as in 3. Digits: the score key's bits 21-14, 13-6,
//     5-0 (after the first digit's 31-22), then the inverted index's 31-24 .. 7-0, so equal scores
//     keep the lowest indices: the tie rule of the CPU top-k, as topk_finish.
//  5. Each unit's remaining candidates are in; a last cluster barrier keeps block 0's shared
//     memory alive until the others are done with it.
// Output as topk_finish: per row, keep(n) token indices in no particular order; 0 .. n-1 when
// keep(n) >= n. The scores are written as by tip_scores (batch_decoder::scores reads them).

#include <cub/block/block_scan.cuh>

#include <cstdint>

#include "fasa/backends/cuda/common.cuh"
#include "fasa/backends/cuda/kernels/prepare.cuh"
#include "fasa/backends/cuda/kernels/tip_scores.cuh"
#include "fasa/backends/cuda/kernels/topk_radix.cuh"

namespace fasa::cuda::kernels {

inline constexpr int select_bins = 256;     // bins of a refinement pass's digit (8 bits or fewer)
inline constexpr int select_passes = 7;     // 3 over the score key's last 22 bits, 4 over ~index
inline constexpr int select_max_units = 4;  // units per KV head this kernel serves (shared memory)

// Pass p's digit of a candidate (token t, score s), and the pass's number of bins.
__device__ __forceinline__ unsigned select_digit(int pass, float s, std::int32_t t) {
  if (pass < 3) {
    const int shift = pass == 0 ? 14 : pass == 1 ? 6 : 0;
    return (ordered_key(s) >> shift) & (pass == 2 ? 63u : 255u);
  }
  return (~static_cast<std::uint32_t>(t) >> (24 - 8 * (pass - 3))) & 255u;
}
__device__ __forceinline__ unsigned select_pass_bins(int pass) { return pass == 2 ? 64u : 256u; }

// The bin that holds the need-th best of `bins` counts in block 0's shared memory (`lead`, a
// cluster_map'd pointer), copied first to tot_s. Every thread calls it.
template <int T>
__device__ void lead_find_bin(const unsigned* lead, unsigned bins, std::int64_t need,
                              unsigned* tot_s, unsigned& bin, unsigned& above, unsigned& in_bin) {
#pragma unroll 4
  for (unsigned i = threadIdx.x; i < bins; i += T) tot_s[i] = lead[i];
  __syncthreads();
  find_bin<T>(
      bins, [&](unsigned i) { return tot_s[i]; }, need, bin, above);
  in_bin = tot_s[bin];
  __syncthreads();  // tot_s is refilled by the next call
}

// The other way to the same bins, after a cluster barrier that completed the cluster's counts in
// block 0's shared memory (`counts`, block 0's own pointer: unit u's `bins` bins at u * stride):
// block 0 alone finds, for each unit u < nu with active(u), the bin that holds the need(u)-th
// best and writes it, the count above it and the count in it into bin[u], above[u], in_bin[u]
// of every block of the cluster; a second cluster barrier publishes them. It spares the C-fold
// copy of block 0's counts over distributed shared memory (all from one SM) at the cost of one
// more barrier: 1.00-1.05x with 16-block clusters, 0.97-0.99x with 2 and 4 when it was the only
// way (NOTES.md v18). Every thread of every block calls it.
template <int T, class Active, class Need>
__device__ void cluster_find_bins(unsigned rank, unsigned blocks, const unsigned* counts,
                                  int stride, unsigned bins, int nu, Active active, Need need,
                                  unsigned* bin, unsigned* above, unsigned* in_bin) {
  if (rank == 0) {
    for (int u = 0; u < nu; ++u) {
      if (!active(u)) continue;  // the same in every thread
      const unsigned* c = counts + u * stride;
      unsigned b = 0, a = 0;
      find_bin<T>(
          bins, [&](unsigned i) { return c[i]; }, need(u), b, a);
      if (threadIdx.x < blocks) {  // thread r tells block r
        cluster_map(bin, threadIdx.x)[u] = b;
        cluster_map(above, threadIdx.x)[u] = a;
        cluster_map(in_bin, threadIdx.x)[u] = c[b];
      }
    }
  }
  cluster_sync();
}

// Places for a block's items in two lists, one atomic per list per call: each thread has
// `out_n` items for the output (global counter `out_counter`, shared by the cluster) and
// `cand_n` for the block's candidate list (counter in shared memory); gets where its first of
// each goes. Each list's total per call must stay below 65,536. Every thread calls it.
template <int T>
__device__ void block_reserve(unsigned out_n, unsigned cand_n, unsigned* out_counter,
                              unsigned* cand_counter, unsigned& out_at, unsigned& cand_at) {
  using scan = cub::BlockScan<unsigned, T>;
  __shared__ typename scan::TempStorage storage;
  __shared__ unsigned base_out, base_cand;
  unsigned prefix = 0, total = 0;
  scan(storage).ExclusiveSum(out_n << 16 | cand_n, prefix, total);
  if (threadIdx.x == 0) {
    base_out = total >> 16 ? atomicAdd(out_counter, total >> 16) : 0u;
    base_cand = *cand_counter;
    *cand_counter = base_cand + (total & 0xffffu);
  }
  __syncthreads();
  out_at = base_out + (prefix >> 16);
  cand_at = base_cand + (prefix & 0xffffu);
  __syncthreads();  // the bases and the scan's storage are reused by the next call
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
// KV head, at most select_max_units. Registers capped so four blocks fit an SM with one unit
// per KV head (as tip_scores_lanes) and two with more: the streaming wants the occupancy.
// lead_from: the cluster size from which block 0 alone finds the bins (cluster_find_bins); 0:
// never.
template <class Elem, class St, int D, int UMAX, int LPR>
__global__ __launch_bounds__(tip_threads, UMAX == 1 ? 4 : 2) void tip_select_cluster(
    St st, const Elem* cache, std::int64_t seq_elems, tip_args a, select_out o, select_queries sq,
    unsigned lead_from) {
  static_assert(UMAX <= select_max_units, "tip_select_cluster: too many units per KV head");
  grid_dependency_sync();  // programmatic dependent launch (common.cuh)
  constexpr int T = tip_threads;
  constexpr int V = vec_elems<Elem>;
  constexpr int RPT = tip_lane_rows;
  constexpr int ROWS = T / LPR;
  constexpr int PASS = ROWS * RPT;  // rows per load pass of the block
  __shared__ float q_s[UMAX * D];
  // First digits: this block's; block 0's become the cluster's (the others add theirs in).
  __shared__ unsigned hist_s[UMAX * topk_hist_bins];
  __shared__ unsigned pass_s[3][UMAX * select_bins];  // block 0's: the cluster's pass digits
  __shared__ unsigned tot_s[topk_hist_bins];          // a copy of block 0's counts
  __shared__ unsigned s_cand[2][UMAX];                // this block's candidates per list
  __shared__ unsigned s_bin[UMAX], s_above[UMAX], s_in_bin[UMAX];
  __shared__ long long s_need[UMAX], s_count[UMAX];  // the cluster's, per unit
  __shared__ int s_cur[UMAX];                        // the list holding a unit's candidates
  const auto [rank, blocks] = cluster_position();
  const bool lead_alone = lead_from > 0 && blocks >= lead_from;  // cluster_find_bins
  const int b = blockIdx.z, h = blockIdx.y;
  const tip_units tu = tip_units_of(a, h);
  const std::int64_t n = a.lengths[b];
  const std::int64_t k = a.budget.keep(n);
  const bool select = k < n;  // the same in every block of the cluster (one sequence)
  const std::int64_t row0 = static_cast<std::int64_t>(b) * tu.units + tu.unit0;

  // 0. Counters and histograms zeroed, the queries made.
  if (rank == 0 && threadIdx.x < tu.nu)
    o.counts[(row0 + threadIdx.x) * topk_count_fields + topk_written] = 0u;
  for (int i = threadIdx.x; i < UMAX * topk_hist_bins; i += T) hist_s[i] = 0u;
  for (int i = threadIdx.x; i < UMAX * select_bins; i += T) pass_s[0][i] = 0u;
  if (threadIdx.x < UMAX) s_cand[0][threadIdx.x] = s_cand[1][threadIdx.x] = 0u;
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
  __syncthreads();
  if (select) cluster_arrive();  // block 0's zeroed counts, before the others add to them

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
  if (!select) {    // the unit keeps every token
    for (int u = 0; u < tu.nu; ++u)
      for (std::int64_t t = lo + threadIdx.x; t < hi; t += T)
        o.out[(row0 + u) * o.out_stride + t] = static_cast<std::int32_t>(t);
    return;
  }
  cluster_wait();
  if (rank != 0) {
    unsigned* lead = cluster_map(hist_s, 0u);
    for (int i = threadIdx.x; i < tu.nu * topk_hist_bins; i += T)
      if (hist_s[i] != 0u) atomicAdd(lead + i, hist_s[i]);
  }
  __syncthreads();

  // 2. The bin of the k-th best per unit, from the cluster's histograms.
  cluster_sync();
  if (lead_alone) {
    cluster_find_bins<T>(
        rank, blocks, hist_s, topk_hist_bins, topk_hist_bins, tu.nu, [](int) { return true; },
        [&](int) { return k; }, s_bin, s_above, s_in_bin);
    if (threadIdx.x < tu.nu) {
      const int u = static_cast<int>(threadIdx.x);
      s_need[u] = k - s_above[u];
      s_count[u] = s_in_bin[u];
      s_cur[u] = 0;
    }
  } else {
    for (int u = 0; u < tu.nu; ++u) {
      unsigned bin = 0, above = 0, in_bin = 0;
      lead_find_bin<T>(cluster_map(hist_s + u * topk_hist_bins, 0u), topk_hist_bins, k, tot_s, bin,
                       above, in_bin);
      if (threadIdx.x == 0) {
        s_bin[u] = bin;
        s_need[u] = k - above;
        s_count[u] = in_bin;
        s_cur[u] = 0;
      }
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
  constexpr int UNROLL = 2;  // float4 loads per thread per round: 2,048 tokens per block
  for (int u = 0; u < tu.nu; ++u) {
    const unsigned bin = s_bin[u];
    const float* s = scores + u * a.score_stride;
    for (std::int64_t i0 = lo; i0 < hi; i0 += 4 * T * UNROLL) {  // lo: a multiple of 4
      unsigned d[UNROLL * 4];
#pragma unroll
      for (int r = 0; r < UNROLL; ++r) {
        const std::int64_t i = i0 + (r * T + threadIdx.x) * 4;
        const float4 v = i < hi ? *reinterpret_cast<const float4*>(s + i) : float4{};
        const float e4[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int e = 0; e < 4; ++e) d[r * 4 + e] = i + e < hi ? first_digit(e4[e]) : 0u;
      }
      unsigned above_n = 0, cand_n = 0;
#pragma unroll
      for (int j = 0; j < UNROLL * 4; ++j) {
        const std::int64_t t = i0 + (j / 4 * T + threadIdx.x) * 4 + j % 4;
        above_n += t < hi && d[j] > bin;
        cand_n += t < hi && d[j] == bin;
      }
      unsigned out_at = 0, cand_at = 0;
      block_reserve<T>(above_n, cand_n, written_of(u), &s_cand[0][u], out_at, cand_at);
#pragma unroll
      for (int j = 0; j < UNROLL * 4; ++j) {
        const std::int64_t t = i0 + (j / 4 * T + threadIdx.x) * 4 + j % 4;
        if (t < hi && d[j] > bin) out_of(u)[out_at++] = static_cast<std::int32_t>(t);
        if (t < hi && d[j] == bin) list_of(u, 0)[cand_at++] = static_cast<std::int32_t>(t);
      }
    }
  }
  __syncthreads();

  // 4. Narrow the units whose bin holds more candidates than they still need. Pass p counts
  // into block 0's pass_s[p % 3], which block 0 zeroed during pass p - 1, before that pass's
  // barrier(s); the others last read that buffer (unless block 0 alone does: lead_alone) during
  // pass p - 3, before the first barrier of pass p - 2, which block 0 had passed by then.
  constexpr int CPT = 4;  // candidates per thread per round
#pragma unroll 1
  for (int pass = 0; pass < select_passes; ++pass) {
    bool more = false;
    for (int u = 0; u < tu.nu; ++u) more = more || s_need[u] < s_count[u];
    if (!more) break;  // the same in every block: the counts are the cluster's
    unsigned* lead = cluster_map(pass_s[pass % 3], 0u);
    if (rank == 0)
      for (int i = threadIdx.x; i < UMAX * select_bins; i += T) pass_s[(pass + 1) % 3][i] = 0u;
    for (int u = 0; u < tu.nu; ++u) {
      if (s_need[u] >= s_count[u]) continue;
      const std::int32_t* list = list_of(u, s_cur[u]);
      const float* s = scores + u * a.score_stride;
      for (unsigned e = threadIdx.x; e < s_cand[s_cur[u]][u]; e += T) {
        const std::int32_t t = list[e];
        atomicAdd(lead + u * select_bins + select_digit(pass, s[t], t), 1u);
      }
    }
    __syncthreads();
    cluster_sync();
    if (lead_alone) {
      cluster_find_bins<T>(
          rank, blocks, pass_s[pass % 3], select_bins, select_pass_bins(pass), tu.nu,
          [&](int u) { return s_need[u] < s_count[u]; }, [&](int u) { return s_need[u]; }, s_bin,
          s_above, s_in_bin);
      if (threadIdx.x < tu.nu && s_need[threadIdx.x] < s_count[threadIdx.x])
        s_cand[1 - s_cur[threadIdx.x]][threadIdx.x] = 0u;
    } else {
      for (int u = 0; u < tu.nu; ++u) {
        if (s_need[u] >= s_count[u]) continue;
        unsigned bin = 0, above = 0, in_bin = 0;
        lead_find_bin<T>(lead + u * select_bins, select_pass_bins(pass), s_need[u], tot_s, bin,
                         above, in_bin);
        if (threadIdx.x == 0) {
          s_bin[u] = bin;
          s_above[u] = above;
          s_in_bin[u] = in_bin;
          s_cand[1 - s_cur[u]][u] = 0u;
        }
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
      for (unsigned e0 = 0; e0 < count; e0 += T * CPT) {  // the same trip count in every thread
        std::int32_t t[CPT];
        unsigned d[CPT], above_n = 0, cand_n = 0;
#pragma unroll
        for (int j = 0; j < CPT; ++j) {
          const unsigned e = e0 + j * T + threadIdx.x;
          t[j] = e < count ? list[e] : -1;
        }
#pragma unroll
        for (int j = 0; j < CPT; ++j) {
          d[j] = t[j] >= 0 ? select_digit(pass, s[t[j]], t[j]) : 0u;
          above_n += t[j] >= 0 && d[j] > bin;
          cand_n += t[j] >= 0 && d[j] == bin;
        }
        unsigned out_at = 0, cand_at = 0;
        block_reserve<T>(above_n, cand_n, written_of(u), &s_cand[1 - cur][u], out_at, cand_at);
#pragma unroll
        for (int j = 0; j < CPT; ++j) {
          if (t[j] >= 0 && d[j] > bin) out_of(u)[out_at++] = t[j];
          if (t[j] >= 0 && d[j] == bin) next[cand_at++] = t[j];
        }
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
  __shared__ unsigned s_base[UMAX];
  if (threadIdx.x < tu.nu) {
    const int u = static_cast<int>(threadIdx.x);
    const unsigned count = s_cand[s_cur[u]][u];
    s_base[u] = count > 0 ? atomicAdd(written_of(u), count) : 0u;
  }
  __syncthreads();
  for (int u = 0; u < tu.nu; ++u) {
    const std::int32_t* list = list_of(u, s_cur[u]);
    for (unsigned e = threadIdx.x; e < s_cand[s_cur[u]][u]; e += T)
      out_of(u)[s_base[u] + e] = list[e];
  }
  __syncthreads();
  cluster_sync();  // block 0's shared memory stays until no block reads it
}

}  // namespace fasa::cuda::kernels
