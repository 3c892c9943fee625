// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The fast CPU backend: the same math as fasa/backends/cpu/reference.hpp, restructured so that
// every byte of the cache is read once per step and the arithmetic runs on Eigen packets.
// Never included by a .cu file.
//
// What runs where (all paths produce what the reference produces, within fp32 rounding):
//   attention (dense, FAC, prefill)  one kernel: scores for a block of KV rows against all the
//       queries that share them (a whole GQA group, or a block of prefill queries), an online
//       softmax, then P.V; long row ranges are split into pieces run in parallel and merged with
//       the online-softmax rule (flash-decoding). Rows of the known layouts (contiguous,
//       split_dominant) are read in place, FAC's selected rows included; a user-defined
//       storage's rows are gathered through key_index()/value_index() into per-thread scratch.
//   selection  dot_dim_subset on split_dominant and dot_all_dims on contiguous/split_dominant
//       run as matrix-vector products over the cache; every other selector/storage pair
//       (score_kind::custom, dot_dim_subset on contiguous, user storages) calls the selector's
//       own score() per token. Top-k is an exact radix select with the tie rule of
//       fasa::select_top_k (forced tokens first, then higher score, then lower index).
//
// Threads: OpenMP over KV heads / selection units and pieces of the sequence, backend tag's
// `threads` when > 0, else OpenMP's default; without OpenMP everything runs on the calling thread.
// Decode allocates nothing once its scratch has grown to the largest step (the first step
// sizes the selection scratch for the whole capacity).

#include "fasa/backends/cpu/eigen_core.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "fasa/backends/cpu/host_common.hpp"
#include "fasa/compose/selection.hpp"
#include "fasa/core/error.hpp"
#include "fasa/core/topk.hpp"
#include "fasa/policies/backend/tags.hpp"
#include "fasa/policies/concepts.hpp"
#include "fasa/policies/storage/contiguous.hpp"
#include "fasa/policies/storage/split_dominant.hpp"

#if FASA_COMPILING_WITH_NVCC
#error "fasa/backends/cpu/eigen.hpp is a host-only header; do not include it from a .cu file"
#endif

namespace fasa::cpu {

// ---------------------------------------------------------------------------------------------
// State: the cache buffer (laid out by the storage, like the reference backend's, so tests and
// tools read both the same way) and scratch that grows during warm-up and is then reused.
struct eigen_scratch {
  std::vector<float> qs;             // [columns, head_dim] permuted, scaled queries
  std::vector<float> s;              // [columns, block] scores, then probabilities
  std::vector<float> k;              // [block, head_dim] keys gathered from a user-defined layout
  std::vector<float> v;              // [block, head_dim] values gathered likewise
  std::vector<std::int32_t> cand;    // [capacity] top-k candidates in the threshold bin
  std::vector<std::int32_t> above;   // [capacity] top-k tokens above the threshold bin
  std::vector<std::int32_t> merged;  // [capacity] the two merged
};

struct eigen_state {
  std::vector<float> cache;               // storage.buffer_elements() values
  std::vector<float> scores;              // [units, capacity] ranking scores of one step
  std::vector<std::uint32_t> keys;        // [units, capacity] their top-k ordering keys
  std::vector<std::uint32_t> histograms;  // [units, pieces, radix bins] of those keys
  std::vector<float> partials;            // [pieces, columns, head_dim + 2] online-softmax parts
  std::vector<std::int32_t> forced;       // forced tokens of one step, ascending
  std::vector<eigen_scratch> per_thread;  // one per OpenMP thread
};

namespace eigen_detail {

using packet = Eigen::Array<float, 8, 1>;  // one AVX register, or two SSE/NEON ones
using array_map = Eigen::Map<Eigen::ArrayXf>;
using const_array_map = Eigen::Map<const Eigen::ArrayXf>;

constexpr std::int64_t kBlockRows = 512;      // KV rows per kernel block: K+V of a block stay in L2
constexpr std::int64_t kListBlockRows = 128;  // the same for scattered rows (see attend_piece)
constexpr std::int64_t kMinPieceRows = 2048;  // shortest range worth its own thread (attention)
constexpr std::int64_t kMinListPieceRows = 128;  // the same for scattered rows (FAC):
                                                 // latency-bound, so more threads help sooner
constexpr std::int64_t kMinScoreRows = 4096;     // the same for scoring
constexpr int kPiecesPerThread = 4;              // pieces per thread, for load balance
constexpr std::int64_t kPrefetchRows = 16;       // how far ahead rows are prefetched
constexpr std::int64_t kMinParallelBytes = std::int64_t{1} << 19;  // less runs on one thread

template <class V>
void grow(V& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}

inline packet load(const float* p) { return Eigen::Map<const packet>(p); }

// ---- threads --------------------------------------------------------------------------------

inline int thread_count(const backend::cpu_eigen& be) {
#if defined(_OPENMP)
  return be.threads > 0 ? be.threads : omp_get_max_threads();
#else
  (void)be;
  return 1;
#endif
}

// Runs first(i, thread) for i in [0, n1), then, once all of those are done, second(i, thread)
// for i in [0, n2): one team of up to `threads` threads, so one fork/join per call; thread <
// threads. Work under kMinParallelBytes (the caller's estimate of the bytes it touches) runs on
// the calling thread, because on a busy machine waking a team costs more than it saves.
template <class F1, class F2>
void parallel_phases(int threads, std::int64_t bytes, std::int64_t n1, const F1& first,
                     std::int64_t n2, const F2& second) {
#if defined(_OPENMP)
  const int team = bytes < kMinParallelBytes
                       ? 1
                       : static_cast<int>(std::min<std::int64_t>(threads, std::max(n1, n2)));
  if (team > 1) {
#pragma omp parallel num_threads(team)
    {
      const int tid = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t i = 0; i < n1; ++i) first(i, tid);
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t i = 0; i < n2; ++i) second(i, tid);
    }
    return;
  }
#else
  (void)threads, (void)bytes;
#endif
  for (std::int64_t i = 0; i < n1; ++i) first(i, 0);
  for (std::int64_t i = 0; i < n2; ++i) second(i, 0);
}

template <class F>
void parallel_for(int threads, std::int64_t bytes, std::int64_t n, const F& f) {
  parallel_phases(threads, bytes, n, f, 0, [](std::int64_t, int) {});
}

// The per-thread scratch, every thread's sized up front for what any task of the call may need
// (dynamic scheduling decides which thread runs which task, so sizing on demand would let a
// thread grow its buffers in the middle of a long generation).
inline std::vector<eigen_scratch>& scratch_for(eigen_state& s, int threads,
                                               std::size_t query_floats = 0,
                                               std::size_t score_floats = 0) {
  if (static_cast<int>(s.per_thread.size()) < threads)
    s.per_thread.resize(static_cast<std::size_t>(threads));
  for (auto& sc : s.per_thread) {
    grow(sc.qs, query_floats);
    grow(sc.s, score_floats);
  }
  return s.per_thread;
}

// How many pieces to cut `rows` into when `jobs` jobs already run in parallel.
inline std::int64_t pieces_for(std::int64_t rows, std::int64_t jobs, int threads,
                               std::int64_t min_rows) {
  const std::int64_t want = (std::int64_t{kPiecesPerThread} * threads + jobs - 1) / jobs;
  const std::int64_t most = std::max<std::int64_t>(1, rows / min_rows);
  return std::clamp<std::int64_t>(want, 1, most);
}

// ---- layouts ----------------------------------------------------------------------------------
// A KV head of a known layout is two key segments (row-major [capacity, w0] and [capacity, w1])
// holding the dims perm[0..w0) and perm[w0..d), plus row-major values [capacity, d]. For
// contiguous storage w1 = 0 and perm is the identity; for split_dominant the segments are the
// slab and the rest. q . k is then q_perm[0:w0] . seg0_row + q_perm[w0:d] . seg1_row with the
// query permuted once per head: no per-element index lookups in the loops.
struct head_layout {
  const float* seg0 = nullptr;    // [capacity, w0]
  const float* seg1 = nullptr;    // [capacity, w1]
  const float* values = nullptr;  // [capacity, d]
  int w0 = 0;
  int w1 = 0;
  const std::int32_t* perm = nullptr;  // [d] dim at position j; nullptr: identity
};

template <class St>
inline constexpr bool has_head_layout =
    std::is_same_v<St, storage::contiguous> || std::is_same_v<St, storage::split_dominant>;

inline head_layout layout_of(const storage::contiguous& st, const float* cache, int h) {
  return {cache + st.key_row(h, 0), nullptr, cache + st.value_row(h, 0), st.dim, 0, nullptr};
}
inline head_layout layout_of(const storage::split_dominant& st, const float* cache, int h) {
  return {cache + st.slab_row(h, 0),
          cache + st.rest_row(h, 0),
          cache + st.value_row(h, 0),
          st.slab_width,
          st.rest_width(),
          st.perm + static_cast<std::int64_t>(h) * st.dim};
}

// The rows of one kernel block, read in place: keys as two segments (row strides ld0/ld1),
// values (stride ldv). Row i of the block is token tokens[i], or first + i for a range, so FAC
// reads its selected rows straight from the cache, with no gather copy.
struct row_block {
  const float* k0;
  std::int64_t ld0;
  int w0;
  const float* k1;
  std::int64_t ld1;
  int w1;
  const float* v;
  std::int64_t ldv;
  const std::int32_t* tokens = nullptr;
  std::int64_t first = 0;
  std::int64_t limit = 0;  // a range may prefetch its rows below this (0: no prefetching)

  std::int64_t row(std::int64_t i) const { return tokens ? tokens[i] : first + i; }
  const float* value(std::int64_t i) const { return v + row(i) * ldv; }
  // The row kPrefetchRows after block row i, or -1 when there is none to prefetch.
  std::int64_t row_ahead(std::int64_t i) const;
};

inline std::int64_t row_block::row_ahead(std::int64_t i) const {
  const std::int64_t r = first + i + kPrefetchRows;
  return !tokens && r < limit ? r : -1;
}

// Asks for the w floats of row `row` (of a matrix at base with row stride ld) to be brought to
// L1; row -1: nothing. With two cores sharing the memory bus, a core that also computes does not
// keep enough misses in flight on the hardware prefetcher alone, so the kernels ask for a
// range's rows kPrefetchRows ahead. FAC's scattered rows are not prefetched: asking for whole
// rows ahead made it slower on the development machine (it is latency-bound either way).
// (Always inlined: GCC 12 judges a function whose only effect is __builtin_prefetch "pure" and
// deletes the calls.)
#if defined(__GNUC__)
[[gnu::always_inline]]
#endif
inline void
prefetch_row(const float* base, std::int64_t ld, std::int64_t row, int w) {
#if defined(__GNUC__)
  if (row < 0) return;
  const float* p = base + row * ld;
  for (int i = 0; i < w; i += 16) __builtin_prefetch(p + i, 0, 3);
#else
  (void)base, (void)ld, (void)row, (void)w;
#endif
}

// Rows [first, first+len) of a head, or the rows tokens[first..first+len) when `tokens` is set.
// Known layouts are read in place; a user-defined layout is gathered through key_index() and
// value_index() into the thread's scratch as [len, d] rows in plain dim order.
template <KVStorage St>
row_block rows_of(const St& st, const float* cache, int h, const std::int32_t* tokens,
                  std::int64_t first, std::int64_t len, std::int64_t prefetch_end,
                  eigen_scratch& sc) {
  const int d = st.head_dim();
  if constexpr (has_head_layout<St>) {
    (void)len, (void)sc;
    const head_layout L = layout_of(st, cache, h);
    return {L.seg0,
            L.w0,
            L.w0,
            L.seg1,
            L.w1,
            L.w1,
            L.values,
            d,
            tokens ? tokens + first : nullptr,
            tokens ? 0 : first,
            tokens ? 0 : prefetch_end};
  } else {
    grow(sc.k, static_cast<std::size_t>(len * d));
    grow(sc.v, static_cast<std::size_t>(len * d));
    for (std::int64_t i = 0; i < len; ++i) {
      const std::int64_t tok = tokens ? tokens[first + i] : first + i;
      for (int c = 0; c < d; ++c) {
        sc.k[static_cast<std::size_t>(i * d + c)] = cache[st.key_index(h, tok, c)];
        sc.v[static_cast<std::size_t>(i * d + c)] = cache[st.value_index(h, tok, c)];
      }
    }
    return {sc.k.data(), d, d, nullptr, 0, 0, sc.v.data(), d, nullptr, 0, 0};
  }
}

template <KVStorage St>
const std::int32_t* perm_of(const St& st, int h) {
  if constexpr (std::is_same_v<St, storage::split_dominant>)
    return st.perm + static_cast<std::int64_t>(h) * st.dim;
  else
    return nullptr;  // contiguous and gathered user layouts keep the plain dim order
}

// ---- kernels --------------------------------------------------------------------------------
// Written so that GCC and Clang keep every accumulator in a register: named packets rather than
// arrays of packets, one key segment per pass. Two rows per step for up to four columns, so a
// query packet loaded serves two rows and a key packet every column; four rows for one column,
// so four independent FMA chains hide the FMA latency.

// Dot products of one key segment: s[c * lds + i] (=, or += when Add) k_i[0:w] . q_c[0:w] for
// rows i < rows of the block (key row i at k + row(i) * ldk) and C <= 4 columns q_c = q + c*ldq.
template <int C, bool Add>
void dot_segment(const row_block& b, const float* k, std::int64_t ldk, int w, std::int64_t rows,
                 const float* q, std::int64_t ldq, float* s, std::int64_t lds) {
  static_assert(C >= 1 && C <= 4);
  const auto put = [&](std::int64_t i, int c, float x) {
    if constexpr (Add)
      s[c * lds + i] += x;
    else
      s[c * lds + i] = x;
  };
  const auto ahead = [&](std::int64_t i) { prefetch_row(k, ldk, b.row_ahead(i), w); };
  std::int64_t i = 0;
  if constexpr (C == 1) {
    for (; i + 4 <= rows; i += 4) {
      if (b.limit > 0) ahead(i), ahead(i + 1), ahead(i + 2), ahead(i + 3);
      const float* r0 = k + b.row(i) * ldk;
      const float* r1 = k + b.row(i + 1) * ldk;
      const float* r2 = k + b.row(i + 2) * ldk;
      const float* r3 = k + b.row(i + 3) * ldk;
      packet a0 = packet::Zero(), a1 = packet::Zero(), a2 = packet::Zero(), a3 = packet::Zero();
      int j = 0;
      for (; j + 8 <= w; j += 8) {
        const packet qq = load(q + j);
        a0 += load(r0 + j) * qq;
        a1 += load(r1 + j) * qq;
        a2 += load(r2 + j) * qq;
        a3 += load(r3 + j) * qq;
      }
      float t0 = a0.sum(), t1 = a1.sum(), t2 = a2.sum(), t3 = a3.sum();
      for (; j < w; ++j) {
        t0 += r0[j] * q[j], t1 += r1[j] * q[j];
        t2 += r2[j] * q[j], t3 += r3[j] * q[j];
      }
      put(i, 0, t0), put(i + 1, 0, t1), put(i + 2, 0, t2), put(i + 3, 0, t3);
    }
  }
  for (; i < rows; i += 2) {
    const std::int64_t i1 = i + 1 < rows ? i + 1 : i;  // an odd last row pairs with itself
    if (b.limit > 0) ahead(i), ahead(i1);
    const float* r0 = k + b.row(i) * ldk;
    const float* r1 = k + b.row(i1) * ldk;
    packet a00 = packet::Zero(), a01 = packet::Zero(), a02 = packet::Zero(), a03 = packet::Zero();
    packet a10 = packet::Zero(), a11 = packet::Zero(), a12 = packet::Zero(), a13 = packet::Zero();
    int j = 0;
    for (; j + 8 <= w; j += 8) {
      const packet x0 = load(r0 + j), x1 = load(r1 + j);
      const packet q0 = load(q + j);
      a00 += x0 * q0, a10 += x1 * q0;
      if constexpr (C > 1) {
        const packet q1 = load(q + ldq + j);
        a01 += x0 * q1, a11 += x1 * q1;
      }
      if constexpr (C > 2) {
        const packet q2 = load(q + 2 * ldq + j);
        a02 += x0 * q2, a12 += x1 * q2;
      }
      if constexpr (C > 3) {
        const packet q3 = load(q + 3 * ldq + j);
        a03 += x0 * q3, a13 += x1 * q3;
      }
    }
    float t0[4] = {a00.sum(), C > 1 ? a01.sum() : 0.0f, C > 2 ? a02.sum() : 0.0f,
                   C > 3 ? a03.sum() : 0.0f};
    float t1[4] = {a10.sum(), C > 1 ? a11.sum() : 0.0f, C > 2 ? a12.sum() : 0.0f,
                   C > 3 ? a13.sum() : 0.0f};
    for (; j < w; ++j)
      for (int c = 0; c < C; ++c) {
        t0[c] += r0[j] * q[c * ldq + j];
        t1[c] += r1[j] * q[c * ldq + j];
      }
    for (int c = 0; c < C; ++c) {
      put(i, c, t0[c]);
      if (i1 != i) put(i1, c, t1[c]);
    }
  }
}

// s[c * lds + i] = k_i . q_c for the block's rows and any number of columns, where k_i is seg0
// row i followed by seg1 row i and q_c = q + c * ldq holds the matching (permuted) query values:
// one pass per segment and per four columns (a row read again for more columns comes from L1).
inline void dot_rows(const row_block& b, std::int64_t rows, const float* q, std::int64_t ldq,
                     int columns, float* s, std::int64_t lds) {
  for (int c = 0; c < columns; c += 4) {
    const float* qc = q + c * ldq;
    float* sc = s + c * lds;
    const auto pass = [&](auto add) {
      constexpr bool Add = decltype(add)::value;
      const float* k = Add ? b.k1 : b.k0;
      const std::int64_t ld = Add ? b.ld1 : b.ld0;
      const int w = Add ? b.w1 : b.w0;
      const float* qw = Add ? qc + b.w0 : qc;
      switch (std::min(4, columns - c)) {
        case 4:
          dot_segment<4, Add>(b, k, ld, w, rows, qw, ldq, sc, lds);
          break;
        case 3:
          dot_segment<3, Add>(b, k, ld, w, rows, qw, ldq, sc, lds);
          break;
        case 2:
          dot_segment<2, Add>(b, k, ld, w, rows, qw, ldq, sc, lds);
          break;
        default:
          dot_segment<1, Add>(b, k, ld, w, rows, qw, ldq, sc, lds);
          break;
      }
    };
    pass(std::false_type{});
    if (b.w1 > 0) pass(std::true_type{});
  }
}

// o[c * d + :] += sum_i p[c * ldp + i] * v_i for C <= 4 columns; rows four at a time so each
// value packet loaded serves every column.
template <int C>
void accumulate_rows_fixed(const row_block& b, int d, std::int64_t rows, const float* p,
                           std::int64_t ldp, float* o) {
  static_assert(C >= 1 && C <= 4);
  const std::int64_t full = rows - rows % 4;
  for (std::int64_t i = 0; i < full; i += 4) {
    if (b.limit > 0)
      for (std::int64_t r = i; r < i + 4; ++r) prefetch_row(b.v, b.ldv, b.row_ahead(r), d);
    const float* v0 = b.value(i);
    const float* v1 = b.value(i + 1);
    const float* v2 = b.value(i + 2);
    const float* v3 = b.value(i + 3);
    float w[C][4];
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < 4; ++r) w[c][r] = p[c * ldp + i + r];
    int j = 0;
    for (; j + 8 <= d; j += 8) {
      const packet x0 = load(v0 + j), x1 = load(v1 + j), x2 = load(v2 + j), x3 = load(v3 + j);
      for (int c = 0; c < C; ++c) {
        Eigen::Map<packet> oc(o + c * d + j);
        oc += w[c][0] * x0 + w[c][1] * x1 + w[c][2] * x2 + w[c][3] * x3;
      }
    }
    for (; j < d; ++j)
      for (int c = 0; c < C; ++c)
        o[c * d + j] += w[c][0] * v0[j] + w[c][1] * v1[j] + w[c][2] * v2[j] + w[c][3] * v3[j];
  }
  for (std::int64_t i = full; i < rows; ++i) {
    const Eigen::Map<const Eigen::ArrayXf> vi(b.value(i), d);
    for (int c = 0; c < C; ++c) array_map(o + c * d, d) += p[c * ldp + i] * vi;
  }
}

inline void accumulate_rows(const row_block& b, int d, std::int64_t rows, const float* p,
                            std::int64_t ldp, int columns, float* o) {
  int c = 0;
  for (; c + 4 <= columns; c += 4)
    accumulate_rows_fixed<4>(b, d, rows, p + c * ldp, ldp, o + c * d);
  switch (columns - c) {
    case 3:
      accumulate_rows_fixed<3>(b, d, rows, p + c * ldp, ldp, o + c * d);
      break;
    case 2:
      accumulate_rows_fixed<2>(b, d, rows, p + c * ldp, ldp, o + c * d);
      break;
    case 1:
      accumulate_rows_fixed<1>(b, d, rows, p + c * ldp, ldp, o + c * d);
      break;
    default:
      break;
  }
}

// ---- attention --------------------------------------------------------------------------------
// The online-softmax state of `columns` queries over the rows seen so far, in a partials slot:
// m [columns] running max logit, l [columns] running sum of exp(logit - m),
// o [columns, d] running sum of exp(logit - m) v (not yet divided by l).
struct softmax_parts {
  float* m;
  float* l;
  float* o;
};

inline softmax_parts parts_at(float* slot, int columns) {
  return {slot, slot + columns, slot + 2 * columns};
}

// One job of the attention kernel: `columns` queries that read the same KV rows of KV head
// `kv_head`. query(c) -> post-RoPE query c [d]; limit(c) -> the last token column c may see
// (causal prefill), or INT64_MAX. The rows are tokens[0..rows) or, when tokens is null, 0..rows-1.
struct attention_job {
  int kv_head = 0;
  int columns = 0;
  const std::int32_t* tokens = nullptr;
  std::int64_t rows = 0;
};

// FASA Eq. 8 (FAC) / dense attention for one piece [first, first+len) of a job's rows:
//   Step 1: logits l_i = (q . k_i) / sqrt(d), computed as (q/sqrt(d)) . k_i with q permuted to
//           the layout's dim order;
//   Step 2: online softmax: per block, m' = max(m, max_i l_i), rescale the running l and o by
//           exp(m - m'), p_i = exp(l_i - m');
//   Step 3: l += sum_i p_i, o += sum_i p_i v_i.
// The caller divides o by l after merging the pieces (merge_parts).
template <KVStorage St, class QueryAt, class LimitAt>
void attend_piece(const St& st, const float* cache, const attention_job& job, std::int64_t first,
                  std::int64_t len, const QueryAt& query, const LimitAt& limit, softmax_parts out,
                  eigen_scratch& sc) {
  const int d = st.head_dim();
  const int C = job.columns;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const std::int32_t* perm = perm_of(st, job.kv_head);
  grow(sc.qs, static_cast<std::size_t>(C) * d);
  for (int c = 0; c < C; ++c) {
    const float* q = query(c);
    float* qs = sc.qs.data() + static_cast<std::int64_t>(c) * d;
    if (perm)
      for (int j = 0; j < d; ++j) qs[j] = scale * q[perm[j]];
    else
      for (int j = 0; j < d; ++j) qs[j] = scale * q[j];
    out.m[c] = -std::numeric_limits<float>::infinity();
    out.l[c] = 0.0f;
  }
  std::fill(out.o, out.o + static_cast<std::int64_t>(C) * d, 0.0f);
  grow(sc.s, static_cast<std::size_t>(C) * kBlockRows);

  // Scattered rows (FAC) are bound by memory latency, and a core keeps few rows in flight while
  // it also computes four columns per row. So their blocks are small, and the first column
  // runs alone first: a light pass that brings the block's rows in with many misses in flight,
  // after which the other columns read them from cache (1.4-1.6x faster on the development
  // machine). A range (dense) streams, and takes every column in one pass.
  const bool scattered = job.tokens != nullptr;
  const std::int64_t block = scattered ? kListBlockRows : kBlockRows;
  const int lead = scattered && C > 1 ? 1 : 0;
  for (std::int64_t off = first; off < first + len; off += block) {
    const std::int64_t n = std::min(block, first + len - off);
    const row_block b = rows_of(st, cache, job.kv_head, job.tokens, off, n, first + len, sc);
    // Step 1: logits of the block, s: [C, n].
    if (lead) dot_rows(b, n, sc.qs.data(), d, lead, sc.s.data(), n);
    dot_rows(b, n, sc.qs.data() + lead * d, d, C - lead, sc.s.data() + lead * n, n);
    for (int c = 0; c < C; ++c) {
      array_map p(sc.s.data() + static_cast<std::int64_t>(c) * n, n);
      // Causal prefill: column c sees tokens up to limit(c); a range's rows are tokens off...
      std::int64_t visible = n;
      if (job.tokens == nullptr) {
        const std::int64_t last_seen = limit(c);
        if (last_seen < off + n - 1) visible = std::max<std::int64_t>(0, last_seen - off + 1);
      }
      if (visible == 0) {
        p.setZero();
        continue;
      }
      // Step 2: online softmax update.
      const float m_block = p.head(visible).maxCoeff();
      const float m_new = std::max(out.m[c], m_block);
      const float rescale = std::exp(out.m[c] - m_new);  // 0 on the first block (m = -inf)
      if (rescale != 1.0f) {
        out.l[c] *= rescale;
        array_map(out.o + static_cast<std::int64_t>(c) * d, d) *= rescale;
      }
      out.m[c] = m_new;
      p.head(visible) = (p.head(visible) - m_new).exp();
      p.tail(n - visible).setZero();
      // Step 3 (the sum of p; the P.V product for all columns follows).
      out.l[c] += p.head(visible).sum();
    }
    if (lead) accumulate_rows(b, d, n, sc.s.data(), n, lead, out.o);
    accumulate_rows(b, d, n, sc.s.data() + lead * n, n, C - lead, out.o + lead * d);
  }
}

// Merges the online-softmax parts of `pieces` pieces of one job and writes o / l per column:
//   M = max_p m_p,  o = sum_p exp(m_p - M) o_p / sum_p exp(m_p - M) l_p.
template <class OutAt>
void merge_parts(const float* slots, std::int64_t slot_stride, std::int64_t pieces, int columns,
                 int d, const OutAt& out_at) {
  for (int c = 0; c < columns; ++c) {
    float m = -std::numeric_limits<float>::infinity();
    for (std::int64_t p = 0; p < pieces; ++p) m = std::max(m, slots[p * slot_stride + c]);
    float* out = out_at(c);
    array_map o(out, d);
    o.setZero();
    float l = 0.0f;
    for (std::int64_t p = 0; p < pieces; ++p) {
      const float* slot = slots + p * slot_stride;
      const float mp = slot[c];
      if (mp == -std::numeric_limits<float>::infinity()) continue;  // a piece that saw nothing
      const float w = std::exp(mp - m);
      l += w * slot[columns + c];
      o += w * const_array_map(slot + 2 * columns + static_cast<std::int64_t>(c) * d, d);
    }
    o /= l;
  }
}

// Runs jobs [0, jobs) (job(j) -> attention_job), each cut into pieces run in parallel, and
// writes every column's output through out_at(j, c).
template <KVStorage St, class JobAt, class QueryAt, class LimitAt, class OutAt>
void run_attention(int threads, eigen_state& s, const St& st, std::int64_t jobs, int max_columns,
                   const JobAt& job_at, const QueryAt& query_at, const LimitAt& limit_at,
                   const OutAt& out_at) {
  const int d = st.head_dim();
  std::int64_t longest = 0;
  std::int64_t bytes = 0;  // K and V rows read, for the serial/parallel choice
  for (std::int64_t j = 0; j < jobs; ++j) {
    longest = std::max(longest, job_at(j).rows);
    bytes += job_at(j).rows * d * 2 * std::int64_t{sizeof(float)};
  }
  const bool scattered = jobs > 0 && job_at(0).tokens != nullptr;
  const std::int64_t pieces =
      pieces_for(longest, jobs, threads, scattered ? kMinListPieceRows : kMinPieceRows);
  const std::int64_t slot = static_cast<std::int64_t>(max_columns) * (d + 2);
  // sized for the most pieces any length up to the capacity gets, so decode never grows it later
  const std::int64_t most_pieces = std::max(
      pieces,
      pieces_for(st.capacity(), jobs, threads, scattered ? kMinListPieceRows : kMinPieceRows));
  grow(s.partials, static_cast<std::size_t>(jobs * most_pieces * slot));
  auto& scratch = scratch_for(s, threads, static_cast<std::size_t>(max_columns) * d,
                              static_cast<std::size_t>(max_columns) * kBlockRows);
  const float* cache = s.cache.data();
  float* partials = s.partials.data();

  parallel_for(threads, bytes, jobs * pieces, [&](std::int64_t task, int tid) {
    const std::int64_t j = task / pieces, p = task % pieces;
    const attention_job job = job_at(j);
    // piece p of the job's rows: an even split (some pieces may be empty for short jobs)
    const std::int64_t first = job.rows * p / pieces, last = job.rows * (p + 1) / pieces;
    softmax_parts parts = parts_at(partials + task * slot, job.columns);
    attend_piece(
        st, cache, job, first, last - first, [&](int c) { return query_at(j, c); },
        [&](int c) { return limit_at(j, c); }, parts, scratch[static_cast<std::size_t>(tid)]);
  });
  for (std::int64_t j = 0; j < jobs; ++j) {  // O(pieces * columns * d): not worth a barrier
    const attention_job job = job_at(j);
    merge_parts(partials + j * pieces * slot, slot, pieces, job.columns, d,
                [&](int c) { return out_at(j, c); });
  }
}

// ---- top-k ----------------------------------------------------------------------------------
// TopK-I (FASA Eq. 7) as an exact radix select with fasa::select_top_k's rule: the forced tokens
// first, then the best of the rest by higher score, then lower index. The scoring tasks turn
// their scores into ordering keys and a histogram of the keys' top bits while the scores are
// still in cache (in parallel over pieces of the sequence); the per-unit step then merges the
// pieces' histograms, finds the bin holding the k-th best key, takes every token above it and
// ranks only that bin's tokens exactly.

constexpr int kRadixBits = 11;
constexpr int kRadixShift = 32 - kRadixBits;
constexpr std::int64_t kRadixBins = std::int64_t{1} << kRadixBits;

// Order-preserving map of a ranking score to an unsigned key: a higher score gets a higher key.
// NaN ranks as -inf (as in fasa::topk_rank_key) and -0 equals +0, so keys tie exactly where the
// scores compare equal. Key 0 is never produced; it marks a token taken out of the ranking.
inline std::uint32_t topk_order_key(float score) {
  const float s = score == score ? score + 0.0f : -std::numeric_limits<float>::infinity();
  const auto u = std::bit_cast<std::int32_t>(s);  // -0 + 0 = +0 above
  return static_cast<std::uint32_t>(u ^ ((u >> 31) | std::numeric_limits<std::int32_t>::min()));
}

// keys[j] = topk_order_key(scores[j]) for j < n, and hist[b] = the number of keys in bin b.
inline void topk_keys_and_histogram(const float* scores, std::int64_t n, std::uint32_t* keys,
                                    std::uint32_t* hist) {
  for (std::int64_t j = 0; j < n; ++j) keys[j] = topk_order_key(scores[j]);
  // four sub-histograms, so that runs of equal bins do not serialise on one counter
  std::array<std::array<std::uint32_t, kRadixBins>, 4> h{};
  std::int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    ++h[0][keys[j] >> kRadixShift];
    ++h[1][keys[j + 1] >> kRadixShift];
    ++h[2][keys[j + 2] >> kRadixShift];
    ++h[3][keys[j + 3] >> kRadixShift];
  }
  for (; j < n; ++j) ++h[0][keys[j] >> kRadixShift];
  for (std::int64_t b = 0; b < kRadixBins; ++b) hist[b] = h[0][b] + h[1][b] + h[2][b] + h[3][b];
}

// The per-unit step. keys: [t] (from topk_keys_and_histogram; the forced tokens' keys are set
// to 0 here); hists: [pieces, kRadixBins] of those keys; forced: ascending, at most k entries;
// out: [k] written ascending.
inline void topk_radix_select(std::uint32_t* keys, std::int64_t t, const std::uint32_t* hists,
                              std::int64_t pieces, std::int64_t k,
                              std::span<const std::int32_t> forced, std::int32_t* out,
                              eigen_scratch& sc) {
  k = std::min(k, t);
  const auto nf = static_cast<std::int64_t>(forced.size());
  const std::int64_t need = k - nf;
  if (need <= 0) {
    std::copy(forced.begin(), forced.begin() + k, out);
    return;
  }
  std::array<std::int64_t, kRadixBins> hist{};
  for (std::int64_t p = 0; p < pieces; ++p)
    for (std::int64_t b = 0; b < kRadixBins; ++b)
      hist[static_cast<std::size_t>(b)] += hists[p * kRadixBins + b];
  for (const std::int32_t f : forced) {  // forced tokens leave the ranking (key 0: below all)
    --hist[keys[f] >> kRadixShift];
    ++hist[0];
    keys[f] = 0;
  }
  // The bin holding the need-th best key, and how many keys lie in the bins above it.
  std::int64_t bin = kRadixBins - 1, above = 0;
  for (; bin > 0; --bin) {
    if (above + hist[static_cast<std::size_t>(bin)] >= need) break;
    above += hist[static_cast<std::size_t>(bin)];
  }
  grow(sc.cand, static_cast<std::size_t>(t));
  grow(sc.above, static_cast<std::size_t>(t));
  std::int32_t* in = sc.above.data();
  std::int32_t* cand = sc.cand.data();
  std::int64_t n_in = 0, n_cand = 0;
  const auto lo = static_cast<std::uint32_t>(bin) << kRadixShift;  // keys of the bin or above
  const std::uint32_t hi = lo + ((1u << kRadixShift) - 1);         // keys above the bin
  for (std::int64_t j = 0; j < t; ++j) {
    const std::uint32_t key = keys[j];
    if (key >= lo) {
      if (key > hi)
        in[n_in++] = static_cast<std::int32_t>(j);
      else
        cand[n_cand++] = static_cast<std::int32_t>(j);
    }
  }
  const std::int64_t rem = need - n_in;  // 1 .. n_cand
  if (rem < n_cand)
    std::nth_element(cand, cand + rem, cand + n_cand, [keys](std::int32_t a, std::int32_t b) {
      return keys[a] > keys[b] || (keys[a] == keys[b] && a < b);
    });
  std::sort(cand, cand + rem);
  // Three ascending lists: the bins above, the threshold bin's best, the forced tokens.
  grow(sc.merged, static_cast<std::size_t>(need));
  std::merge(in, in + n_in, cand, cand + rem, sc.merged.data());
  std::merge(sc.merged.data(), sc.merged.data() + need, forced.begin(), forced.end(), out);
}

// ---- selection --------------------------------------------------------------------------------

// The fast scoring paths: dot_dim_subset on split_dominant, dot_all_dims on both known layouts.
template <class Sel, class St>
inline constexpr bool has_product_scoring = (Sel::kind == score_kind::dot_all_dims &&
                                             has_head_layout<St>) ||
                                            (DimSubsetSelector<Sel> &&
                                             std::is_same_v<St, storage::split_dominant>);

}  // namespace eigen_detail
}  // namespace fasa::cpu

namespace fasa {

template <>
struct backend_impl<backend::cpu_eigen> {
  using is_implemented = void;
  using state = cpu::eigen_state;
  using tag = backend::cpu_eigen;

  template <KVStorage St>
  static void init(const tag& be, const St& st, state& s) {
    FASA_CHECK(be.threads >= 0, "cpu_eigen: threads must be >= 0 (0: OpenMP's default), got ",
               be.threads);
    s.cache.assign(static_cast<std::size_t>(st.buffer_elements()), 0.0f);
  }

  // Writes token `pos`: k_rot, v: [num_kv_heads, head_dim] (keys already rotated).
  template <KVStorage St>
  static void append(const tag&, const St& st, state& s, std::int64_t pos, const float* k_rot,
                     const float* v) {
    const int d = st.head_dim();
    float* cache = s.cache.data();
    for (int h = 0; h < st.num_kv_heads(); ++h) {
      const float* kh = k_rot + static_cast<std::int64_t>(h) * d;
      const float* vh = v + static_cast<std::int64_t>(h) * d;
      if constexpr (cpu::eigen_detail::has_head_layout<St>) {
        const auto L = cpu::eigen_detail::layout_of(st, cache, h);
        float* seg0 = const_cast<float*>(L.seg0) + pos * L.w0;
        float* seg1 = const_cast<float*>(L.seg1) + pos * L.w1;
        for (int j = 0; j < L.w0; ++j) seg0[j] = kh[L.perm ? L.perm[j] : j];
        for (int j = 0; j < L.w1; ++j) seg1[j] = kh[L.perm[L.w0 + j]];
        std::memcpy(const_cast<float*>(L.values) + pos * d, vh,
                    sizeof(float) * static_cast<std::size_t>(d));
      } else {
        for (int i = 0; i < d; ++i) {
          cache[st.key_index(h, pos, i)] = kh[i];
          cache[st.value_index(h, pos, i)] = vh[i];
        }
      }
    }
  }

  // TIP (FASA Eq. 6-7), the oracle, or any selector: one ranking score per cached token and
  // unit, then the top keep(t) per unit. q_rot: [num_q_heads, head_dim].
  template <TokenSelector Sel, KVStorage St>
  static void select(const tag& be, const Sel& sel, const St& st, const attention_shape& shape,
                     state& s, const float* q_rot, std::int64_t t, selection& out) {
    namespace ed = cpu::eigen_detail;
    const int threads = ed::thread_count(be);
    const selection_granularity g = sel.granularity();
    const int units = num_selection_units(shape, g);
    out.all = false;
    out.granularity = g;
    out.units = units;
    out.per_unit = sel.keep(t);
    out.tokens.resize(static_cast<std::size_t>(units) * static_cast<std::size_t>(out.per_unit));
    const std::int64_t cap = st.capacity();
    // sized for the whole capacity on first use, so later steps never allocate
    ed::grow(s.scores, static_cast<std::size_t>(units) * static_cast<std::size_t>(cap));
    ed::grow(s.keys, static_cast<std::size_t>(units) * static_cast<std::size_t>(cap));
    const bool per_query_scores = g == selection_granularity::query_head;
    auto& scratch = ed::scratch_for(
        s, threads,
        static_cast<std::size_t>(per_query_scores ? shape.group_size() : 1) * shape.head_dim);
    for (auto& sc : scratch) {
      ed::grow(sc.cand, static_cast<std::size_t>(cap));
      ed::grow(sc.above, static_cast<std::size_t>(cap));
      ed::grow(sc.merged, static_cast<std::size_t>(cap));
    }
    s.forced.reserve(static_cast<std::size_t>(cap));
    s.forced.clear();
    append_forced_tokens(sel.forced(), t, out.per_unit, s.forced);
    std::sort(s.forced.begin(), s.forced.end());
    const std::span<const std::int32_t> forced(s.forced);

    // Step 1, per (KV head or unit, piece of the sequence): S[u][j], the ranking score of token
    // j for unit u, turned into top-k keys and the piece's key histogram. Step 2, per unit:
    // TopK-I(S[u], keep), forced tokens first, then the highest scores. One team for both.
    constexpr bool products = ed::has_product_scoring<Sel, St>;
    const int score_units = products ? shape.num_kv_heads : units;
    const std::int64_t pieces = ed::pieces_for(t, score_units, threads, ed::kMinScoreRows);
    const std::int64_t most_pieces = ed::pieces_for(cap, score_units, threads, ed::kMinScoreRows);
    ed::grow(s.histograms, static_cast<std::size_t>(units * most_pieces * ed::kRadixBins));
    const auto keys_of = [&](int u, std::int64_t p, std::int64_t first, std::int64_t last) {
      const std::int64_t at = static_cast<std::int64_t>(u) * t + first;
      ed::topk_keys_and_histogram(s.scores.data() + at, last - first, s.keys.data() + at,
                                  s.histograms.data() + (u * pieces + p) * ed::kRadixBins);
    };
    const auto score = [&](std::int64_t task, int tid) {
      const std::int64_t p = task % pieces;
      const std::int64_t first = t * p / pieces, last = t * (p + 1) / pieces;
      const int owner = static_cast<int>(task / pieces);  // a KV head (products) or a unit
      if constexpr (products) {
        score_piece_by_products(sel, st, shape, s, q_rot, t, owner, first, last, tid);
        const bool per_query = g == selection_granularity::query_head;
        const int G = shape.group_size();
        for (int u = per_query ? owner * G : owner; u < (per_query ? (owner + 1) * G : owner + 1);
             ++u)
          keys_of(u, p, first, last);
      } else {
        score_piece_by_selector(sel, st, shape, s, q_rot, t, owner, first, last);
        keys_of(owner, p, first, last);
      }
    };
    const auto top_k = [&](std::int64_t u, int tid) {
      ed::topk_radix_select(s.keys.data() + u * t, t,
                            s.histograms.data() + u * pieces * ed::kRadixBins, pieces, out.per_unit,
                            forced, out.unit_tokens(static_cast<int>(u)).data(),
                            scratch[static_cast<std::size_t>(tid)]);
    };
    const std::int64_t bytes =
        t * shape.head_dim * std::int64_t{sizeof(float)} * shape.num_kv_heads;
    ed::parallel_phases(threads, bytes, score_units * pieces, score, units, top_k);
  }

  // FAC (FASA Eq. 8) over each unit's selected rows, or dense attention when sel.all:
  //   o_h = softmax(q_h K_T^T / sqrt(d)) V_T.
  // Under GQA the heads of a group that read the same rows (dense, or kv_head selection) are
  // one job, so each KV row is read once per group. q_rot, out: [num_q_heads, head_dim].
  template <KVStorage St>
  static void attend(const tag& be, const St& st, const attention_shape& shape, state& s,
                     const float* q_rot, std::int64_t t, const selection& sel, float* out) {
    namespace ed = cpu::eigen_detail;
    const int threads = ed::thread_count(be);
    const int d = shape.head_dim;
    const int G = shape.group_size();
    const bool per_query = !sel.all && sel.granularity == selection_granularity::query_head;
    const std::int64_t jobs = per_query ? shape.num_q_heads : shape.num_kv_heads;
    const int columns = per_query ? 1 : G;
    // job j's first query head: the group's first head, or the head itself
    const auto head_of = [&](std::int64_t j, int c) { return per_query ? j : j * G + c; };
    ed::run_attention(
        threads, s, st, jobs, columns,
        [&](std::int64_t j) {
          ed::attention_job job;
          job.kv_head = per_query ? shape.kv_head_of(static_cast<int>(j)) : static_cast<int>(j);
          job.columns = columns;
          job.tokens = sel.all ? nullptr : sel.unit_tokens(static_cast<int>(j)).data();
          job.rows = sel.all ? t : sel.per_unit;
          return job;
        },
        [&](std::int64_t j, int c) { return q_rot + head_of(j, c) * d; },
        [](std::int64_t, int) { return std::numeric_limits<std::int64_t>::max(); },
        [&](std::int64_t j, int c) { return out + head_of(j, c) * d; });
  }

  // Dense causal attention for T new tokens at positions start .. start+T-1, whose keys are
  // already in the cache, blocked as (KV head, block of new tokens): the block's queries of the
  // whole group share every key row. q_rot, out: [T, num_q_heads, head_dim].
  template <KVStorage St>
  static void prefill(const tag& be, const St& st, const attention_shape& shape, state& s,
                      const float* q_rot, std::int64_t start, std::int64_t count, float* out) {
    namespace ed = cpu::eigen_detail;
    const int threads = ed::thread_count(be);
    const int d = shape.head_dim;
    const int G = shape.group_size();
    const std::int64_t row = static_cast<std::int64_t>(shape.num_q_heads) * d;
    const std::int64_t per_block = std::max(1, 64 / G);  // new tokens per job: ~64 query columns
    const std::int64_t blocks = (count + per_block - 1) / per_block;
    const std::int64_t jobs = shape.num_kv_heads * blocks;
    // column c of job j: new token i = b * per_block + c / G, query head h * G + c % G
    const auto token_of = [&](std::int64_t j, int c) { return (j % blocks) * per_block + c / G; };
    const auto head_of = [&](std::int64_t j, int c) { return (j / blocks) * G + c % G; };
    ed::run_attention(
        threads, s, st, jobs, static_cast<int>(per_block) * G,
        [&](std::int64_t j) {
          const std::int64_t first = (j % blocks) * per_block;
          const std::int64_t n = std::min(per_block, count - first);
          ed::attention_job job;
          job.kv_head = static_cast<int>(j / blocks);
          job.columns = static_cast<int>(n) * G;
          job.rows = start + first + n;  // causal: the block's last token sees this many keys
          return job;
        },
        [&](std::int64_t j, int c) { return q_rot + token_of(j, c) * row + head_of(j, c) * d; },
        [&](std::int64_t j, int c) { return start + token_of(j, c); },
        [&](std::int64_t j, int c) { return out + token_of(j, c) * row + head_of(j, c) * d; });
  }

 private:
  // dot_dim_subset / dot_all_dims as products over the cache. For KV head h, the units that read
  // it (kv_head: one unit scoring with the group's summed query; query_head: the group's G
  // units) are C columns of one pass over h's rows:
  //   S[:, c] = K_seg0 qt_c[0:w0] + K_seg1 qt_c[w0:d]
  // where qt_c is unit c's query in the layout's dim order, zero outside the unit's score dims
  // (FASA Eq. 6: the sum over dominant FCs of q^[i] . k^[i]). The rest segment is read only if a
  // score dim lies in it, so TIP over a matching split_dominant slab reads 2 N_tip dims per key.
  template <TokenSelector Sel, KVStorage St>
  static void score_piece_by_products(const Sel& sel, const St& st, const attention_shape& shape,
                                      state& s, const float* q_rot, std::int64_t t, int h,
                                      std::int64_t first, std::int64_t last, int tid) {
    namespace ed = cpu::eigen_detail;
    const int d = shape.head_dim;
    const int G = shape.group_size();
    const bool per_query = sel.granularity() == selection_granularity::query_head;
    const int columns = per_query ? G : 1;
    cpu::eigen_scratch& sc = s.per_thread[static_cast<std::size_t>(tid)];
    const ed::head_layout L = ed::layout_of(st, s.cache.data(), h);
    // the units' queries in layout order: qt [columns, d]
    ed::grow(sc.qs, static_cast<std::size_t>(columns) * d);
    float* qt = sc.qs.data();
    std::fill(qt, qt + static_cast<std::int64_t>(columns) * d, 0.0f);
    bool uses_rest = false;
    for (int c = 0; c < columns; ++c) {
      const int unit = per_query ? h * G + c : h;
      float* qc = qt + static_cast<std::int64_t>(c) * d;
      // the unit's query: its head's, or the group's sum (kv_head granularity)
      const auto q_at = [&](int dim) {
        if (per_query) return q_rot[static_cast<std::int64_t>(unit) * d + dim];
        float sum = 0.0f;
        for (int g = 0; g < G; ++g) sum += q_rot[static_cast<std::int64_t>(h * G + g) * d + dim];
        return sum;
      };
      const auto slot = [&](int dim) { return L.perm ? st_slot(st, h, dim) : dim; };
      if constexpr (Sel::kind == score_kind::dot_all_dims) {
        for (int dim = 0; dim < d; ++dim) qc[slot(dim)] = q_at(dim);
        uses_rest = L.w1 > 0;
      } else {
        for (const std::int32_t dim : sel.score_dims(unit)) {
          const int j = slot(dim);
          qc[j] += q_at(dim);
          uses_rest = uses_rest || j >= L.w0;
        }
      }
    }
    const ed::row_block b{L.seg0,  L.w0, L.w0,    L.seg1, L.w1, uses_rest ? L.w1 : 0,
                          nullptr, 0,    nullptr, first,  last};
    float* out = s.scores.data() + static_cast<std::int64_t>(per_query ? h * G : h) * t + first;
    ed::dot_rows(b, last - first, qt, d, columns, out, t);
  }

  template <KVStorage St>
  static int st_slot(const St& st, int h, int dim) {
    if constexpr (std::is_same_v<St, storage::split_dominant>)
      return st.slot_of(h, dim);
    else
      return dim;
  }

  // Any selector: its own score() per token, through the storage's key_index(), for one piece
  // of one unit. score() must be safe to call concurrently (it is const).
  template <TokenSelector Sel, KVStorage St>
  static void score_piece_by_selector(const Sel& sel, const St& st, const attention_shape& shape,
                                      state& s, const float* q_rot, std::int64_t t, int u,
                                      std::int64_t first, std::int64_t last) {
    const unit_queries uq = cpu::make_unit_queries(shape, sel.granularity(), q_rot, u);
    const cpu::host_key_reader<St> keys{&st, s.cache.data(), uq.kv_head};
    float* su = s.scores.data() + static_cast<std::int64_t>(u) * t;
    for (std::int64_t j = first; j < last; ++j) su[j] = sel.score(uq, keys, j);
  }
};

}  // namespace fasa
