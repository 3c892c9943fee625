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
// bin): the first pass of the radix top-k, fused here so the scores are read once after. The
// last block of a KV head to finish finds, per unit, the bin that holds the k-th best score,
// writes it for topk_filter and topk_finish, and clears the histogram for the next step.

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
  unsigned* hist;      // [batch, units, topk_hist_bins], zero between steps
  unsigned* counts;    // [batch, units, topk_count_fields] (topk_radix.cuh)
  unsigned* tip_done;  // [batch, kv_heads]: blocks finished; zero between steps
};

// The units of KV head h that one TIP block scores.
struct tip_units {
  int units;  // selection units per sequence
  int unit0;  // the first of them
  int nu;     // how many (the group under query_head, one under kv_head)
};

__device__ __forceinline__ tip_units tip_units_of(const tip_args& a, int h) {
  const bool per_query = a.granularity == selection_granularity::query_head;
  const int group = a.shape.group_size();
  return {num_selection_units(a.shape, a.granularity), per_query ? h * group : h,
          per_query ? group : 1};
}

// Fills q_s[u * D + j] with unit u's scoring query (zero for u >= nu) and zeroes the block's
// histogram; ends with a barrier. Every thread calls it.
template <int D, int UMAX>
__device__ void tip_setup(const tip_args& a, int b, const tip_units& tu, float* q_s,
                          unsigned* hist_s) {
  for (int i = threadIdx.x; i < UMAX * D; i += blockDim.x) {
    const int u = i / D, j = i % D;
    q_s[i] = u < tu.nu ? a.q_tip[(static_cast<std::int64_t>(b) * tu.units + tu.unit0 + u) * D + j]
                       : 0.0f;
  }
  for (int i = threadIdx.x; i < UMAX * topk_hist_bins; i += blockDim.x) hist_s[i] = 0;
  __syncthreads();
}

// Writes token t's score for unit u (+inf when forced) and counts it in the block's histogram.
__device__ __forceinline__ void tip_emit(const tip_args& a, float* scores, unsigned* hist_s,
                                         bool histogram, std::int64_t n, std::int64_t t, int u,
                                         float score) {
  if (a.forced.any() &&
      ((a.forced.current && t == n - 1) || t < a.forced.sinks || t >= n - a.forced.recent))
    score = __int_as_float(0x7f800000);  // +inf
  scores[u * a.score_stride + t] = score;
  if (histogram) atomicAdd(&hist_s[u * topk_hist_bins + first_digit(score)], 1u);
}

// After the block's rows: adds its histogram to the units' global ones; the KV head's last
// block then finds each unit's bin of the k-th best (topk_count_fields), clears the histograms
// and resets the block counter. Every thread calls it.
__device__ void tip_finish(const tip_args& a, int b, int h, const tip_units& tu, std::int64_t n,
                           const unsigned* hist_s) {
  __syncthreads();
  const std::int64_t row0 = static_cast<std::int64_t>(b) * tu.units + tu.unit0;
  unsigned* hist = a.hist + row0 * topk_hist_bins;
  for (int i = threadIdx.x; i < tu.nu * topk_hist_bins; i += blockDim.x)
    if (hist_s[i] != 0) atomicAdd(&hist[i], hist_s[i]);
  __shared__ bool last;
  __syncthreads();  // the block's adds happen before thread 0's fence, which publishes them all
  unsigned* done = a.tip_done + static_cast<std::int64_t>(b) * a.shape.num_kv_heads + h;
  if (threadIdx.x == 0) {
    __threadfence();
    last = atomicAdd(done, 1u) + 1u == gridDim.x;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  // A warp per unit: each lane sums 32 consecutive bins (from the top), a warp scan finds the
  // lane whose bins hold the k-th best, and that lane walks its bins.
  const std::int64_t k = a.budget.keep(n);
  constexpr int per_lane = topk_hist_bins / 32;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int u = warp; u < tu.nu; u += blockDim.x / 32) {
    unsigned* hu = hist + u * topk_hist_bins;
    const int top = topk_hist_bins - lane * per_lane;  // this lane's bins: [top - per_lane, top)
    unsigned local = 0;
#pragma unroll 8
    for (int j = 0; j < per_lane; ++j) local += __ldcg(hu + top - 1 - j);
    unsigned incl = local;  // inclusive scan over the lanes, highest bins first
#pragma unroll
    for (int off = 1; off < 32; off *= 2) {
      const unsigned v = __shfl_up_sync(0xffffffffu, incl, off);
      if (lane >= off) incl += v;
    }
    const unsigned before = incl - local;
    if (before < k && incl >= k) {  // exactly one lane: the k-th best is in its bins
      unsigned cum = before, bin = 0, above = 0;
      for (int j = 0; j < per_lane; ++j) {
        const unsigned count = __ldcg(hu + top - 1 - j);
        if (cum < k && cum + count >= k) {
          bin = static_cast<unsigned>(top - 1 - j);
          above = cum;
        }
        cum += count;
      }
      unsigned* c = a.counts + (row0 + u) * topk_count_fields;
      c[topk_written] = 0;
      c[topk_candidates] = 0;
      c[topk_bin] = bin;
      c[topk_above] = above;
    }
    for (int j = 0; j < per_lane; ++j) hu[top - 1 - j] = 0u;  // each lane its own bins
  }
  if (threadIdx.x == 0) *done = 0u;
}

// grid: (blocks per KV head, kv_heads, batch); each block strides over the tokens. UMAX >= units
// per KV head.
template <class Elem, class St, int D, int UMAX>
__global__ __launch_bounds__(tip_threads) void tip_scores(St st, const Elem* cache,
                                                          std::int64_t seq_elems, tip_args a) {
  grid_dependency_sync();  // programmatic dependent launch (common.cuh)
  constexpr int V = vec_elems<Elem>;
  constexpr int R = tip_rows_per_thread;
  __shared__ float q_s[UMAX * D];
  __shared__ unsigned hist_s[UMAX * topk_hist_bins];
  const int b = blockIdx.z, h = blockIdx.y;
  const tip_units tu = tip_units_of(a, h);
  const std::int64_t n = a.lengths[b];
  const bool histogram = a.budget.keep(n) < n;
  tip_setup<D, UMAX>(a, b, tu, q_s, hist_s);

  const Elem* base = cache + b * seq_elems;
  const int fw = layout<St>::first_width(st);
  const int nv = a.width / V;
  float* scores = a.scores + (static_cast<std::int64_t>(b) * tu.units + tu.unit0) * a.score_stride;
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
      if (t >= n) continue;
#pragma unroll
      for (int u = 0; u < UMAX; ++u)
        if (u < tu.nu) tip_emit(a, scores, hist_s, histogram, n, t, u, acc[r][u]);
    }
  }
  if (histogram) tip_finish(a, b, h, tu, n, hist_s);
}

// A lane's query chunks: qc[u][e] = q_s[u * D + col + e] (col: the lane's first position).
template <int D, int UMAX, int V>
__device__ __forceinline__ void tip_lane_query(const float* q_s, int col, float (&qc)[UMAX][V]) {
#pragma unroll
  for (int u = 0; u < UMAX; ++u)
#pragma unroll
    for (int e = 0; e < V; ++e) qc[u][e] = q_s[u * D + col + e];
}

// Where a lane's chunk (storage positions col ..) of KV head h's key row t starts.
template <class Elem, class St>
__device__ __forceinline__ const Elem* tip_lane_row(const St& st, const Elem* base, int h, int col,
                                                    int fw, std::int64_t t) {
  return col < fw ? base + layout<St>::first_row(st, h, t) + col
                  : base + layout<St>::second_row(st, h, t) + (col - fw);
}

inline constexpr int tip_lane_rows = 4;  // rows per thread per pass of tip_scores_lanes
// Dynamic shared memory of tip_scores_lanes' ring of `stages` passes.
__host__ __device__ constexpr int tip_ring_bytes(int stages) {
  return stages * tip_lane_rows * tip_threads * static_cast<int>(sizeof(uint4));
}

// One pass of tip_scores_lanes (and tip_scores_bulk): each thread's RPT 16-byte chunks `raw`,
// chunk i of the row t0 + i * ROWS + threadIdx.x / LPR at lane threadIdx.x % LPR, dotted with
// the units' query chunks `qc`, summed over the row's lanes and emitted.
template <class Elem, int UMAX, int LPR>
__device__ __forceinline__ void tip_lanes_pass(const tip_args& a, const tip_units& tu,
                                               float* scores, unsigned* hist_s, bool histogram,
                                               std::int64_t n, std::int64_t t0,
                                               const float (&qc)[UMAX][vec_elems<Elem>],
                                               const uint4 (&raw)[tip_lane_rows]) {
  constexpr int V = vec_elems<Elem>;
  constexpr int RPT = tip_lane_rows;
  constexpr int ROWS = tip_threads / LPR;
  const int c = threadIdx.x % LPR, r_in = threadIdx.x / LPR;
  float acc[RPT][UMAX];
#pragma unroll
  for (int i = 0; i < RPT; ++i) {
    float k[V];
    to_floats<Elem>(raw[i], k);
#pragma unroll
    for (int u = 0; u < UMAX; ++u) {
      acc[i][u] = 0.0f;
#pragma unroll
      for (int e = 0; e < V; ++e) acc[i][u] = fmaf(qc[u][e], k[e], acc[i][u]);
#pragma unroll
      for (int off = LPR / 2; off > 0; off /= 2)
        acc[i][u] += __shfl_xor_sync(0xffffffffu, acc[i][u], off);
    }
  }
  if constexpr (UMAX == 1) {  // one score per row: lane 0 of the row writes each
#pragma unroll
    for (int i = 0; i < RPT; ++i) {
      const std::int64_t t = t0 + i * ROWS + r_in;
      if (c == 0 && t < n) tip_emit(a, scores, hist_s, histogram, n, t, 0, acc[i][0]);
    }
  } else if (c < RPT) {  // several: lane c of the row writes pass row c's (selects, no spill)
    const std::int64_t t = t0 + c * ROWS + r_in;
    float mine[UMAX];
#pragma unroll
    for (int u = 0; u < UMAX; ++u) {
      mine[u] = acc[0][u];
#pragma unroll
      for (int i = 1; i < RPT; ++i) mine[u] = c == i ? acc[i][u] : mine[u];
    }
    if (t < n)
#pragma unroll
      for (int u = 0; u < UMAX; ++u)
        if (u < tu.nu) tip_emit(a, scores, hist_s, histogram, n, t, u, mine[u]);
  }
}

// The same scores with LPR lanes per row (LPR = width / vector width, a power of two): lane c of
// a row loads the row's 16-byte chunk c, so a warp reads 32 / LPR consecutive rows as one
// contiguous, fully coalesced stretch, and the lanes sum their partial dot products with
// shuffles. Each thread takes RPT rows per pass to keep RPT loads in flight; after the
// reduction every lane of a row holds all RPT sums. With several units per row (query_head),
// lane i writes row i's scores (RPT <= LPR), spreading the stores and histogram adds over the
// lanes (measured: TIP 0.33 -> 0.28 ms at 131K x 8); with one, lane 0 writes them all, which
// measured faster there.
// S > 0: the loads go through a ring of S passes in shared memory (cp.async, each thread its
// own slots, so no barrier), S - 1 passes ahead of the one being scored: more bytes in flight
// than registers could hold, and no pause between a pass's loads and its math. Dynamic shared
// memory: tip_ring_bytes(S).
// grid and block as tip_scores.
template <class Elem, class St, int D, int UMAX, int LPR, int S>
__global__ __launch_bounds__(tip_threads) void tip_scores_lanes(St st, const Elem* cache,
                                                                std::int64_t seq_elems,
                                                                tip_args a) {
  grid_dependency_sync();  // programmatic dependent launch (common.cuh)
  constexpr int V = vec_elems<Elem>;
  constexpr int RPT = tip_lane_rows;
  constexpr int ROWS = tip_threads / LPR;  // rows per load pass of the block
  static_assert(S == 0 || S >= 2, "a ring needs at least two passes");
  extern __shared__ uint4 ring[];  // S > 0: [S][RPT][tip_threads]
  static_assert(32 % LPR == 0, "a row's lanes must sit in one warp");
  static_assert(RPT <= LPR, "each of a pass's rows needs a lane to write it");
  __shared__ float q_s[UMAX * D];
  __shared__ unsigned hist_s[UMAX * topk_hist_bins];
  const int b = blockIdx.z, h = blockIdx.y;
  const tip_units tu = tip_units_of(a, h);
  const std::int64_t n = a.lengths[b];
  const bool histogram = a.budget.keep(n) < n;
  tip_setup<D, UMAX>(a, b, tu, q_s, hist_s);

  const Elem* base = cache + b * seq_elems;
  const int fw = layout<St>::first_width(st);
  const int c = threadIdx.x % LPR, col = c * V;
  const int r_in = threadIdx.x / LPR;
  float* scores = a.scores + (static_cast<std::int64_t>(b) * tu.units + tu.unit0) * a.score_stride;
  float qc[UMAX][V];
  tip_lane_query<D>(q_s, col, qc);
  const auto row_at = [&](std::int64_t t) { return tip_lane_row(st, base, h, col, fw, t); };
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * ROWS * RPT;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * ROWS * RPT;
  // Copies the pass starting at t0 into ring slot `slot` (rows past the end: nothing).
  [[maybe_unused]] const auto issue = [&](std::int64_t t0, int slot) {
#pragma unroll
    for (int i = 0; i < RPT; ++i) {
      const std::int64_t t = t0 + i * ROWS + r_in;
      if (t < n) cp_async16(&ring[(slot * RPT + i) * tip_threads + threadIdx.x], row_at(t));
    }
  };
  if constexpr (S > 0) {
#pragma unroll
    for (int p = 0; p < S - 1; ++p) {
      issue(first + p * stride, p);
      cp_async_commit();
    }
  }
  [[maybe_unused]] int slot = 0;
  for (std::int64_t t0 = first; t0 < n; t0 += stride) {
    uint4 raw[RPT];
    if constexpr (S > 0) {
      issue(t0 + (S - 1) * stride, slot == 0 ? S - 1 : slot - 1);
      cp_async_commit();
      cp_async_wait<S - 1>();  // this thread's copies of this pass have landed
#pragma unroll
      for (int i = 0; i < RPT; ++i) raw[i] = ring[(slot * RPT + i) * tip_threads + threadIdx.x];
      slot = slot + 1 == S ? 0 : slot + 1;
    } else {
#pragma unroll
      for (int i = 0; i < RPT; ++i) {
        const std::int64_t t = t0 + i * ROWS + r_in;
        if (t < n) raw[i] = load_raw(row_at(t));
      }
    }
    tip_lanes_pass<Elem, UMAX, LPR>(a, tu, scores, hist_s, histogram, n, t0, qc, raw);
  }
  if constexpr (S > 0) cp_async_wait<0>();
  if (histogram) tip_finish(a, b, h, tu, n, hist_s);
}

// The same scores where a KV head's scored rows are one contiguous run in memory (the FASA-C
// slab, or whole rows of a contiguous cache scored whole: the host checks), their loads as bulk
// copies (cp.async.bulk, sm_90+): a tile of the rows one pass of tip_scores_lanes scores (16 KB)
// arrives in one copy, issued by one thread, through a ring of S tiles in shared memory whose
// slots complete on mbarriers. The other threads issue no loads and compute no addresses; the
// bytes in flight (S - 1 tiles ahead of the one scored) do not depend on how many threads are
// resident. Tiles go to blocks round-robin, as the passes of tip_scores_lanes do. The math and
// the emitted scores are tip_scores_lanes' (tip_lanes_pass). Dynamic shared memory:
// tip_ring_bytes(S). grid and block as tip_scores.
template <class Elem, class St, int D, int UMAX, int LPR, int S>
__global__ __launch_bounds__(tip_threads) void tip_scores_bulk(St st, const Elem* cache,
                                                               std::int64_t seq_elems, tip_args a) {
  grid_dependency_sync();  // programmatic dependent launch (common.cuh)
  constexpr int V = vec_elems<Elem>;
  constexpr int RPT = tip_lane_rows;
  constexpr int TILE = tip_threads / LPR * RPT;  // rows per tile
  constexpr int TILE_VECS = RPT * tip_threads;   // 16-byte chunks per tile
  static_assert(S >= 2, "a ring needs at least two tiles");
  static_assert(32 % LPR == 0, "a row's lanes must sit in one warp");
  extern __shared__ uint4 ring[];  // [S][TILE_VECS]
  __shared__ alignas(8) std::uint64_t full[S];
  __shared__ float q_s[UMAX * D];
  __shared__ unsigned hist_s[UMAX * topk_hist_bins];
  const int b = blockIdx.z, h = blockIdx.y;
  const tip_units tu = tip_units_of(a, h);
  const std::int64_t n = a.lengths[b];
  const bool histogram = a.budget.keep(n) < n;
  if (threadIdx.x == 0)
#pragma unroll
    for (int i = 0; i < S; ++i) mbarrier_init(&full[i]);
  tip_setup<D, UMAX>(a, b, tu, q_s, hist_s);  // its closing barrier publishes the mbarriers

  const Elem* rows = cache + b * seq_elems + layout<St>::first_row(st, h, 0);
  const std::int64_t tiles = (n + TILE - 1) / TILE;
  const auto issue = [&](std::int64_t tile, int slot) {
    const std::int64_t t0 = tile * TILE;
    const std::int64_t count = n - t0 < TILE ? n - t0 : TILE;
    bulk_copy_to_shared(&ring[slot * TILE_VECS], rows + t0 * a.width,
                        static_cast<unsigned>(count * a.width * static_cast<int>(sizeof(Elem))),
                        &full[slot]);
  };
  if (threadIdx.x == 0)
#pragma unroll
    for (int i = 0; i < S; ++i)
      if (blockIdx.x + static_cast<std::int64_t>(i) * gridDim.x < tiles)
        issue(blockIdx.x + static_cast<std::int64_t>(i) * gridDim.x, i);
  float* scores = a.scores + (static_cast<std::int64_t>(b) * tu.units + tu.unit0) * a.score_stride;
  const int col = threadIdx.x % LPR * V;
  float qc[UMAX][V];
  tip_lane_query<D>(q_s, col, qc);
  int slot = 0;
  unsigned parity = 0;
  for (std::int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    mbarrier_wait(&full[slot], parity);
    uint4 raw[RPT];  // rows past the end read stale chunks, never emitted
#pragma unroll
    for (int i = 0; i < RPT; ++i) raw[i] = ring[slot * TILE_VECS + i * tip_threads + threadIdx.x];
    __syncthreads();  // every thread holds its chunks: the slot can be refilled
    const std::int64_t next = tile + static_cast<std::int64_t>(S) * gridDim.x;
    if (threadIdx.x == 0 && next < tiles) {
      fence_proxy_async_shared();  // the slot's reads before the copy that overwrites it
      issue(next, slot);
    }
    tip_lanes_pass<Elem, UMAX, LPR>(a, tu, scores, hist_s, histogram, n, tile * TILE, qc, raw);
    if (++slot == S) {
      slot = 0;
      parity ^= 1u;
    }
  }
  if (histogram) tip_finish(a, b, h, tu, n, hist_s);
}

}  // namespace fasa::cuda::kernels
