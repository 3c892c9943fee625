// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Contextual agreement (CA), the offline measure that picks each head's dominant frequency
// chunks (FASA Sec. 3.2, Eq. 4). At a decode step with query q_t and t cached keys,
//
//     alpha^i_j = q_t^[i] . k_j^[i]        per-FC score: the 2-D dot product of the post-RoPE
//                                          q and k on FC i's two dims (raw: no 1/sqrt(d), no
//                                          softmax, which would not change any ranking)
//     alpha_j   = sum_i alpha^i_j          the full logit (FASA Sec. 3.1: the FCs partition the
//                                          head, so the per-FC terms add up to q . k_j)
//     CA_K^i    = |TopK-I(alpha, K) ∩ TopK-I(alpha^i, K)| / K        (FASA Eq. 4)
//
// K is capped at t (K_eff = min(K, t)), as the official code does, so CA is 1 for every FC once
// K >= t. The mean of CA over decode steps is what Alg. 1 ranks FCs by (fasa/calib/
// dominant_sets.hpp).
//
// Top-k order: higher score first, equal scores by lower token index, the order of
// fasa::select_top_k (core/topk.hpp), so the top-K sets are unique and every algorithm that
// honours the order finds the same ones. A NaN score is an error here rather than ranked last
// (STYLE Sec. 4): a NaN in calibration means a broken forward pass, not a token to skip.
//
// Cost per (unit, step): one pass over the t x head_dim keys, then, for the full row and for
// each FC row, a bucket select that places every token in the smallest top-K_eff set holding
// it (O(t), see detail::row_levels), and one pass that counts agreements for all K at once.
//
// Granularity (fasa::selection_granularity): query_head scores each query head on its own (the
// paper; the official code expands K/V to query heads with repeat_kv). kv_head sums the group's
// post-RoPE queries before scoring, the same unit score that fasa_tip uses in kv_head mode
// (fasa/policies/selector/fasa_tip.hpp), so calibration ranks FCs by the score TIP will use.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fasa/core/error.hpp"
#include "fasa/core/shape.hpp"
#include "fasa/core/topk.hpp"
#include "fasa/policies/concepts.hpp"

namespace fasa::calib {

// The CA windows of the official profiler (FASA.md Sec. 2.3).
inline std::vector<int> default_k_values() { return {128, 256, 512, 1024, 2048, 4096}; }

// Throws unless k_values is a non-empty, strictly ascending list of positive windows.
// `what` names the list in the message (a field name, or a function).
inline void check_k_values(std::span<const int> k_values, const char* what = "k_values") {
  FASA_CHECK(!k_values.empty(), what, " must list at least one window K, got an empty list");
  for (std::size_t i = 0; i < k_values.size(); ++i) {
    FASA_CHECK(k_values[i] >= 1, what, "[", i, "] must be a positive window K, got ", k_values[i]);
    FASA_CHECK(i == 0 || k_values[i] > k_values[i - 1], what, " must be strictly ascending, but ",
               what, "[", i, "] = ", k_values[i], " follows ", k_values[i - 1]);
  }
}

// ---------------------------------------------------------------------------------------------
// FC -> dims table of one head: FC i occupies dims pairs()[i]. The pairs must partition
// [0, head_dim), so that the per-FC scores add up to the full logit.
class fc_table {
 public:
  fc_table(int head_dim, std::vector<dim_pair> pairs)
      : head_dim_(head_dim), pairs_(std::move(pairs)) {
    FASA_CHECK(head_dim > 0 && head_dim % 2 == 0,
               "fc_table: head_dim must be positive and even (an FC is a pair of dims), got ",
               head_dim);
    FASA_CHECK(static_cast<int>(pairs_.size()) == head_dim / 2, "fc_table: a head of head_dim ",
               head_dim, " has ", head_dim / 2, " FCs, got ", pairs_.size(), " dim pairs");
    std::vector<int> owner(static_cast<std::size_t>(head_dim), -1);
    for (int i = 0; i < num_fcs(); ++i) {
      const dim_pair p = pairs_[static_cast<std::size_t>(i)];
      for (int d : {p.first, p.second}) {
        FASA_CHECK(d >= 0 && d < head_dim, "fc_table: FC ", i, " names dim ", d,
                   " outside [0, head_dim=", head_dim, ")");
        FASA_CHECK(owner[static_cast<std::size_t>(d)] < 0, "fc_table: dim ", d, " belongs to FC ",
                   owner[static_cast<std::size_t>(d)], " and to FC ", i,
                   "; the FCs must partition the head's dims");
        owner[static_cast<std::size_t>(d)] = i;
      }
    }
  }

  // The map of a positional encoding: FC i -> pe.fc_dims(i).
  template <PositionalEncoding PE>
  explicit fc_table(const PE& pe) : fc_table(pe.head_dim(), pairs_of(pe)) {}

  int head_dim() const { return head_dim_; }
  int num_fcs() const { return static_cast<int>(pairs_.size()); }
  dim_pair operator[](int fc) const { return pairs_[static_cast<std::size_t>(fc)]; }
  std::span<const dim_pair> pairs() const { return pairs_; }

  friend bool operator==(const fc_table&, const fc_table&) = default;

 private:
  template <PositionalEncoding PE>
  static std::vector<dim_pair> pairs_of(const PE& pe) {
    std::vector<dim_pair> p(static_cast<std::size_t>(pe.num_fcs()));
    for (int i = 0; i < pe.num_fcs(); ++i) p[static_cast<std::size_t>(i)] = pe.fc_dims(i);
    return p;
  }

  int head_dim_;
  std::vector<dim_pair> pairs_;  // [head_dim / 2]
};

// ---------------------------------------------------------------------------------------------
namespace detail {

// Sums the unit's queries in double. q: [count, head_dim]; out: [head_dim].
inline void sum_queries(const float* q, int count, int head_dim, std::vector<double>& out) {
  FASA_CHECK(q != nullptr, "contextual agreement: the query pointer is null");
  FASA_CHECK(count >= 1, "contextual agreement: need at least one query per unit, got ", count);
  out.assign(static_cast<std::size_t>(head_dim), 0.0);
  for (int g = 0; g < count; ++g)
    for (int d = 0; d < head_dim; ++d)
      out[static_cast<std::size_t>(d)] += q[static_cast<std::ptrdiff_t>(g) * head_dim + d];
}

// The arithmetic that defines the scores (tests reproduce it bit for bit): per FC
// double(q_a) k_a + double(q_b) k_b, rounded to float; the full score sums the unrounded
// per-FC terms in FC order, then rounds. qs: [head_dim]; keys: [t, head_dim];
// per_fc: [num_fcs, t]; full: [t] or null. Tokens go in blocks so that a block's keys stay in
// cache while every FC row gets a contiguous run of writes.
inline void fc_scores_of_sum(const double* qs, const float* keys, std::int64_t t,
                             const fc_table& fcs, float* per_fc, float* full) {
  constexpr std::int64_t block = 32;
  const int d = fcs.head_dim();
  const int nf = fcs.num_fcs();
  double sum[block];
  for (std::int64_t j0 = 0; j0 < t; j0 += block) {
    const std::int64_t n = std::min(block, t - j0);
    std::fill(sum, sum + n, 0.0);
    for (int i = 0; i < nf; ++i) {
      const dim_pair p = fcs[i];
      const double qa = qs[p.first], qb = qs[p.second];
      float* row = per_fc + static_cast<std::int64_t>(i) * t + j0;
      for (std::int64_t b = 0; b < n; ++b) {
        const float* k = keys + (j0 + b) * d;
        const double s = qa * k[p.first] + qb * k[p.second];
        row[b] = static_cast<float>(s);
        sum[b] += s;
      }
    }
    if (full != nullptr)
      for (std::int64_t b = 0; b < n; ++b) full[j0 + b] = static_cast<float>(sum[b]);
  }
}

// One token of a score row, ranked by the order of fasa::select_top_k.
struct ranked_token {
  float score;
  std::int32_t index;
};
inline bool ranks_before(const ranked_token& a, const ranked_token& b) {
  return a.score > b.score || (a.score == b.score && a.index < b.index);
}
// Token (s, j) is in the top-K set whose last member is `last`.
inline bool within(float s, std::int32_t j, const ranked_token& last) {
  return s > last.score || (s == last.score && j <= last.index);
}

// Scratch of row_levels.
struct level_scratch {
  std::vector<std::uint32_t> bucket;          // [t]
  std::vector<std::int64_t> count;            // [num_buckets]
  std::vector<std::uint16_t> code;            // [num_buckets]: see row_levels
  std::vector<std::int64_t> group_start;      // [groups + 1]
  std::vector<std::int64_t> fill;             // [groups]
  std::vector<std::int32_t> group_of_bucket;  // [num_buckets]: -1 or a candidate group
  std::vector<std::int32_t> group_of_k;       // [n_K]
  std::vector<std::int64_t> rank_in_group;    // [n_K]
  std::vector<std::uint32_t> bucket_of_k;     // [n_K]
  std::vector<ranked_token> candidates;       // the tokens of the buckets that hold a K-th token
  std::vector<ranked_token> last;             // [n_K]: the last member of each top-K set
};

// levels[j] = the first m such that token j is in TopK-I(s, k_eff[m]), or n_K when it is in
// none (the sets are nested, so "j in the top-k_eff[m]" is levels[j] <= m), in the order
// (score desc, index asc). k_eff: ascending, each in [1, t]; s: [t], free of NaN; n_K < 255.
//
// Bucket select rather than an nth_element per row: tokens are binned by score into ~t/4
// buckets with a monotone map (a higher bucket never holds a lower score), one counting pass
// finds the bucket of each k_eff[m]-th token, and only those few buckets' tokens are ordered.
// A token outside those buckets gets its level from its bucket alone. O(t) per row with small
// constants: about 4x faster than nested nth_element at t = 8K.
inline void row_levels(std::span<const float> s, std::span<const std::int64_t> k_eff,
                       std::span<std::uint8_t> levels, level_scratch& ws) {
  const auto t = static_cast<std::int64_t>(s.size());
  const auto nk = k_eff.size();
  ws.last.resize(nk);
  float lo = s[0], hi = s[0];
  for (float v : s) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const double width = static_cast<double>(hi) - static_cast<double>(lo);
  if (!(width > 0.0) || !std::isfinite(width)) {
    // all scores equal, or infinite ones: order the whole row (rare; correctness over speed)
    ws.candidates.resize(static_cast<std::size_t>(t));
    for (std::int64_t j = 0; j < t; ++j)
      ws.candidates[static_cast<std::size_t>(j)] = {s[static_cast<std::size_t>(j)],
                                                    static_cast<std::int32_t>(j)};
    std::sort(ws.candidates.begin(), ws.candidates.end(), ranks_before);
    std::fill(levels.begin(), levels.end(), static_cast<std::uint8_t>(nk));
    std::int64_t p = 0;
    for (std::size_t m = 0; m < nk; ++m)
      for (; p < k_eff[m]; ++p)
        levels[static_cast<std::size_t>(ws.candidates[static_cast<std::size_t>(p)].index)] =
            static_cast<std::uint8_t>(m);
    return;
  }

  // 1. Buckets: b(v) = floor((v - lo) * scale), monotone in v because each step rounds
  //    monotonically; the top value is clamped into the last bucket.
  const std::int64_t nb = std::clamp<std::int64_t>(t / 4, 16, std::int64_t{1} << 16);
  const double scale = static_cast<double>(nb) / width;
  ws.bucket.resize(static_cast<std::size_t>(t));
  ws.count.assign(static_cast<std::size_t>(nb), 0);
  for (std::int64_t j = 0; j < t; ++j) {
    const double x = (static_cast<double>(s[static_cast<std::size_t>(j)]) - lo) * scale;
    const auto b = static_cast<std::uint32_t>(std::min(x, static_cast<double>(nb - 1)));
    ws.bucket[static_cast<std::size_t>(j)] = b;
    ++ws.count[b];
  }

  // 2. Walking down from the top bucket: the bucket of each k_eff[m]-th token and its rank
  //    there. Buckets holding one become candidate groups.
  ws.group_of_bucket.assign(static_cast<std::size_t>(nb), -1);
  ws.group_start.assign(1, 0);
  ws.group_of_k.resize(nk);
  ws.rank_in_group.resize(nk);
  ws.bucket_of_k.resize(nk);
  std::int64_t above = 0, b = nb - 1;
  for (std::size_t m = 0; m < nk; ++m) {
    while (above + ws.count[static_cast<std::size_t>(b)] < k_eff[m])
      above += ws.count[static_cast<std::size_t>(b--)];
    auto& g = ws.group_of_bucket[static_cast<std::size_t>(b)];
    if (g < 0) {
      g = static_cast<std::int32_t>(ws.group_start.size() - 1);
      ws.group_start.push_back(ws.group_start.back() + ws.count[static_cast<std::size_t>(b)]);
    }
    ws.group_of_k[m] = g;
    ws.rank_in_group[m] = k_eff[m] - above - 1;
    ws.bucket_of_k[m] = static_cast<std::uint32_t>(b);
  }

  // 3. The exact k_eff[m]-th token, ordering only the candidate buckets' tokens.
  ws.candidates.resize(static_cast<std::size_t>(ws.group_start.back()));
  ws.fill.assign(ws.group_start.begin(), ws.group_start.end() - 1);
  for (std::int64_t j = 0; j < t; ++j) {
    const std::int32_t g = ws.group_of_bucket[ws.bucket[static_cast<std::size_t>(j)]];
    if (g >= 0)
      ws.candidates[static_cast<std::size_t>(ws.fill[static_cast<std::size_t>(g)]++)] = {
          s[static_cast<std::size_t>(j)], static_cast<std::int32_t>(j)};
  }
  for (std::size_t m = 0; m < nk; ++m) {
    const auto g = static_cast<std::size_t>(ws.group_of_k[m]);
    const auto first = ws.candidates.begin() + ws.group_start[g];
    const auto end = ws.candidates.begin() + ws.group_start[g + 1];
    std::nth_element(first, first + ws.rank_in_group[m], end, ranks_before);
    ws.last[m] = first[ws.rank_in_group[m]];
  }

  // 4. Levels. For bucket beta, code = (#m with bucket_of_k > beta) << 8 | #m with >= beta:
  //    a token of beta is outside every top-k_eff[m] whose K-th token sits in a higher bucket
  //    and inside every one whose K-th token sits in a lower bucket; only when beta holds some
  //    K-th tokens (the two counts differ) does it compare with them.
  ws.code.resize(static_cast<std::size_t>(nb));
  std::size_t gt = 0, ge = 0;
  for (std::int64_t beta = nb - 1; beta >= 0; --beta) {
    const auto ub = static_cast<std::uint32_t>(beta);
    gt = ge;
    while (ge < nk && ws.bucket_of_k[ge] >= ub) ++ge;
    ws.code[static_cast<std::size_t>(beta)] = static_cast<std::uint16_t>(gt << 8 | ge);
  }
  for (std::int64_t j = 0; j < t; ++j) {
    const std::uint16_t c = ws.code[ws.bucket[static_cast<std::size_t>(j)]];
    std::size_t level = c & 0xff;
    for (std::size_t m = c >> 8; m < (c & 0xffu); ++m)
      if (within(s[static_cast<std::size_t>(j)], static_cast<std::int32_t>(j), ws.last[m])) {
        level = m;
        break;
      }
    levels[static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(level);
  }
}

}  // namespace detail

// Scratch buffers of contextual_agreement, reused between calls so that the calibration loop
// allocates only when t grows. One workspace per thread; its contents are internal.
struct ca_workspace {
  std::vector<double> q_sum;           // [head_dim]
  std::vector<float> per_fc;           // [num_fcs, t]
  std::vector<float> full;             // [t]
  std::vector<std::uint8_t> level;     // [t]: first K index whose full top-K holds the token
  std::vector<std::uint8_t> fc_level;  // [t]: the same for the FC being counted
  std::vector<std::int64_t> k_eff;     // [n_K]
  std::vector<std::int64_t> hist;      // [n_K + 1]
  detail::level_scratch select;
};

// Per-FC scores of one unit against t keys (FASA Sec. 3.1).
//   q:      [count, head_dim] post-RoPE queries of the unit, summed before scoring (count = 1
//           for a query head; the group size for a KV-head unit)
//   keys:   [t, head_dim] row-major post-RoPE keys of the unit's KV head
//   per_fc: [num_fcs, t]  per_fc[i * t + j] = q^[i] . k_j^[i]
//   full:   [t] or empty  full[j] = q . k_j, the per-FC terms summed in double and rounded once
inline void fc_scores(const float* q, int count, const float* keys, std::int64_t t,
                      const fc_table& fcs, std::span<float> per_fc, std::span<float> full = {}) {
  FASA_CHECK(t >= 0, "fc_scores: t must be >= 0, got ", t);
  FASA_CHECK(t == 0 || keys != nullptr, "fc_scores: the key pointer is null for t=", t);
  FASA_CHECK(static_cast<std::int64_t>(per_fc.size()) == fcs.num_fcs() * t,
             "fc_scores: per_fc must hold num_fcs * t = ", fcs.num_fcs(), " * ", t, " = ",
             fcs.num_fcs() * t, " scores, got ", per_fc.size());
  FASA_CHECK(full.empty() || static_cast<std::int64_t>(full.size()) == t,
             "fc_scores: full must be empty or hold t = ", t, " scores, got ", full.size());
  std::vector<double> qs;
  detail::sum_queries(q, count, fcs.head_dim(), qs);
  detail::fc_scores_of_sum(qs.data(), keys, t, fcs, per_fc.data(),
                           full.empty() ? nullptr : full.data());
}

// CA_K of every FC of one unit at one decode step (FASA Eq. 4), for each K in k_values.
//   q:        [count, head_dim] post-RoPE queries of the unit, summed before scoring
//   keys:     [t, head_dim] row-major post-RoPE keys of the unit's KV head, t >= 1
//   k_values: [n_K] strictly ascending windows; K_eff = min(K, t)
//   out:      [n_K, num_fcs]  out[m * num_fcs + i] = CA_{K_m} of FC i
inline void contextual_agreement(const float* q, int count, const float* keys, std::int64_t t,
                                 const fc_table& fcs, std::span<const int> k_values,
                                 std::span<double> out, ca_workspace& ws) {
  FASA_CHECK(t >= 1, "contextual_agreement: needs at least one cached key, got t=", t);
  FASA_CHECK(t <= std::numeric_limits<std::int32_t>::max(),
             "contextual_agreement: too many tokens for int32 indices: t=", t);
  FASA_CHECK(keys != nullptr, "contextual_agreement: the key pointer is null");
  check_k_values(k_values, "contextual_agreement: k_values");
  FASA_CHECK(k_values.size() < 255, "contextual_agreement: at most 254 windows K, got ",
             k_values.size());
  const int nf = fcs.num_fcs();
  const auto nk = static_cast<int>(k_values.size());
  FASA_CHECK(static_cast<std::int64_t>(out.size()) == static_cast<std::int64_t>(nk) * nf,
             "contextual_agreement: out must hold n_K * num_fcs = ", nk, " * ", nf, " = ", nk * nf,
             " values, got ", out.size());
  const auto tu = static_cast<std::size_t>(t);

  // 1. Scores: one pass over the keys writes every FC's row and the full row.
  detail::sum_queries(q, count, fcs.head_dim(), ws.q_sum);
  ws.per_fc.resize(static_cast<std::size_t>(nf) * tu);
  ws.full.resize(tu);
  detail::fc_scores_of_sum(ws.q_sum.data(), keys, t, fcs, ws.per_fc.data(), ws.full.data());
  for (std::size_t j = 0; j < tu; ++j)  // a NaN term makes the sum NaN: one check covers all
    FASA_CHECK(!std::isnan(ws.full[j]), "contextual_agreement: the score of token ", j,
               " is NaN (non-finite query or key values)");

  ws.k_eff.resize(static_cast<std::size_t>(nk));
  for (int m = 0; m < nk; ++m)
    ws.k_eff[static_cast<std::size_t>(m)] = std::min<std::int64_t>(k_values[m], t);
  const std::span<const std::int64_t> k_eff = ws.k_eff;

  // 2. The full row's top-K sets as levels: level[j] = the first K index whose set holds
  //    token j (nk when none), so "j in TopK-I(alpha, K_m)" is level[j] <= m.
  ws.level.resize(tu);
  ws.fc_level.resize(tu);
  detail::row_levels(ws.full, k_eff, ws.level, ws.select);

  // 3. Each FC's top-K sets, counted against the full ones: token j is in both top-K_m sets
  //    for every m >= max(fc_level[j], level[j]), so a histogram of that maximum and a prefix
  //    sum give the overlap at all K at once.
  ws.hist.resize(static_cast<std::size_t>(nk) + 1);
  for (int i = 0; i < nf; ++i) {
    const std::span<const float> s(ws.per_fc.data() + static_cast<std::size_t>(i) * tu, tu);
    detail::row_levels(s, k_eff, ws.fc_level, ws.select);
    std::fill(ws.hist.begin(), ws.hist.end(), 0);
    for (std::size_t j = 0; j < tu; ++j) ++ws.hist[std::max(ws.fc_level[j], ws.level[j])];
    std::int64_t agree = 0;
    for (int m = 0; m < nk; ++m) {
      agree += ws.hist[static_cast<std::size_t>(m)];
      out[static_cast<std::size_t>(m) * static_cast<std::size_t>(nf) +
          static_cast<std::size_t>(i)] =
          static_cast<double>(agree) / static_cast<double>(k_eff[static_cast<std::size_t>(m)]);
    }
  }
}

// The same with a workspace of its own (allocates on every call).
inline void contextual_agreement(const float* q, int count, const float* keys, std::int64_t t,
                                 const fc_table& fcs, std::span<const int> k_values,
                                 std::span<double> out) {
  ca_workspace ws;
  contextual_agreement(q, count, keys, t, fcs, k_values, out, ws);
}

// ---------------------------------------------------------------------------------------------
// A table of CA values, [n_K, num_layers, num_units, num_fcs]: the mean CA of a calibration run
// (units = query heads or KV heads according to the granularity it was measured at).
struct ca_table {
  std::vector<int> k_values;  // [n_K] strictly ascending
  int num_layers = 0;
  int num_units = 0;
  int num_fcs = 0;
  std::vector<double> values;  // [n_K, num_layers, num_units, num_fcs], each in [0, 1]

  int num_k() const { return static_cast<int>(k_values.size()); }
  std::size_t offset(int k_index, int layer, int unit, int fc) const {
    return ((static_cast<std::size_t>(k_index) * static_cast<std::size_t>(num_layers) +
             static_cast<std::size_t>(layer)) *
                static_cast<std::size_t>(num_units) +
            static_cast<std::size_t>(unit)) *
               static_cast<std::size_t>(num_fcs) +
           static_cast<std::size_t>(fc);
  }
  double at(int k_index, int layer, int unit, int fc) const {
    return values[offset(k_index, layer, unit, fc)];
  }
  // The CA of every FC of one (K, layer, unit): [num_fcs].
  std::span<const double> unit_values(int k_index, int layer, int unit) const {
    return {values.data() + offset(k_index, layer, unit, 0), static_cast<std::size_t>(num_fcs)};
  }

  // Position of window k in k_values; throws when the table was not measured at k.
  int k_index(int k) const {
    const auto it = std::find(k_values.begin(), k_values.end(), k);
    if (it == k_values.end()) {
      std::string list;
      for (int v : k_values) list += (list.empty() ? "" : ", ") + std::to_string(v);
      FASA_FAIL("window K = ", k, " is not one of the calibrated k_values [", list, "]");
    }
    return static_cast<int>(it - k_values.begin());
  }

  void validate() const {
    check_k_values(k_values, "ca_table: k_values");
    FASA_CHECK(num_layers >= 1 && num_units >= 1 && num_fcs >= 1,
               "ca_table needs positive sizes, got num_layers=", num_layers,
               " num_units=", num_units, " num_fcs=", num_fcs);
    const std::size_t want = static_cast<std::size_t>(num_k()) * num_layers * num_units * num_fcs;
    FASA_CHECK(values.size() == want,
               "ca_table: values must hold n_K * num_layers * num_units * "
               "num_fcs = ",
               want, " numbers, got ", values.size());
    for (std::size_t i = 0; i < values.size(); ++i)
      FASA_CHECK(values[i] >= 0.0 && values[i] <= 1.0, "ca_table: value ", i, " is ", values[i],
                 ", outside [0, 1]");
  }

  friend bool operator==(const ca_table&, const ca_table&) = default;
};

// What a calibration run measures: its shape and windows. The units of the granularity are
// query heads (query_head, one query per unit) or KV heads (kv_head, the group's queries).
struct ca_config {
  int num_layers = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  selection_granularity granularity = selection_granularity::query_head;
  std::vector<int> k_values = default_k_values();

  int num_units() const {
    return granularity == selection_granularity::query_head ? num_q_heads : num_kv_heads;
  }
  int group_size() const { return num_q_heads / num_kv_heads; }
  // Rows of q that add() reads for one unit.
  int queries_per_unit() const {
    return granularity == selection_granularity::query_head ? 1 : group_size();
  }
  // The KV head whose keys unit u reads.
  int kv_head_of_unit(int unit) const {
    return granularity == selection_granularity::query_head ? unit / group_size() : unit;
  }

  void validate() const {
    FASA_CHECK(num_layers >= 1 && num_q_heads >= 1 && num_kv_heads >= 1,
               "ca_config needs positive sizes, got num_layers=", num_layers,
               " num_q_heads=", num_q_heads, " num_kv_heads=", num_kv_heads);
    FASA_CHECK(num_q_heads % num_kv_heads == 0, "ca_config: num_q_heads (", num_q_heads,
               ") must be a multiple of num_kv_heads (", num_kv_heads, ") for GQA");
    check_k_values(k_values, "ca_config: k_values");
  }
};

// Sums of CA and step counts over a calibration run, [n_K, num_layers, num_units, num_fcs];
// mean() divides them. Each add() is one decode step of one (layer, unit). Not thread-safe:
// give each thread its own accumulator and merge() them, or compute with contextual_agreement
// and a workspace per thread and add_values() under a lock.
class ca_accumulator {
 public:
  ca_accumulator(fc_table fcs, ca_config config)
      : fcs_(std::move(fcs)), config_(std::move(config)) {
    config_.validate();
    sums_.assign(static_cast<std::size_t>(num_k()) * config_.num_layers * num_units() * num_fcs(),
                 0.0);
    steps_.assign(static_cast<std::size_t>(config_.num_layers) * num_units(), 0);
    step_ca_.resize(static_cast<std::size_t>(num_k()) * num_fcs());
  }
  template <PositionalEncoding PE>
  ca_accumulator(const PE& pe, ca_config config)
      : ca_accumulator(fc_table(pe), std::move(config)) {}

  const fc_table& fcs() const { return fcs_; }
  const ca_config& config() const { return config_; }
  int head_dim() const { return fcs_.head_dim(); }
  int num_fcs() const { return fcs_.num_fcs(); }
  int num_units() const { return config_.num_units(); }
  int num_k() const { return static_cast<int>(config_.k_values.size()); }

  // One decode step of one unit.
  //   q:    [queries_per_unit(), head_dim] post-RoPE queries: the query head's one query, or
  //         under kv_head granularity the group's queries (summed before scoring)
  //   keys: [t, head_dim] row-major post-RoPE keys of the unit's KV head, t >= 1
  void add(int layer, int unit, const float* q, const float* keys, std::int64_t t) {
    check_slot(layer, unit, "add");
    contextual_agreement(q, config_.queries_per_unit(), keys, t, fcs_, config_.k_values, step_ca_,
                         ws_);
    accumulate(layer, unit, step_ca_);
  }

  // One decode step of every unit of a layer.
  //   q:    [num_q_heads, head_dim] post-RoPE queries of the step (GQA groups contiguous)
  //   keys: KV head h's [t, head_dim] rows start at keys + h * kv_head_stride;
  //         kv_head_stride = 0 means t * head_dim, i.e. keys: [num_kv_heads, t, head_dim]
  //         (pass capacity * head_dim for a cache laid out [num_kv_heads, capacity, head_dim])
  void add_layer(int layer, const float* q, const float* keys, std::int64_t t,
                 std::int64_t kv_head_stride = 0) {
    FASA_CHECK(q != nullptr && keys != nullptr, "ca_accumulator::add_layer: null q or keys");
    const std::int64_t d = head_dim();
    if (kv_head_stride == 0) kv_head_stride = t * d;
    FASA_CHECK(kv_head_stride >= t * d, "ca_accumulator::add_layer: kv_head_stride (",
               kv_head_stride, ") must be at least t * head_dim = ", t * d);
    for (int u = 0; u < num_units(); ++u) {
      const std::int64_t first_q = static_cast<std::int64_t>(u) * config_.queries_per_unit();
      add(layer, u, q + first_q * d, keys + config_.kv_head_of_unit(u) * kv_head_stride, t);
    }
  }

  // One step of one unit whose CA was computed elsewhere. ca: [n_K, num_fcs], each in [0, 1].
  void add_values(int layer, int unit, std::span<const double> ca) {
    check_slot(layer, unit, "add_values");
    FASA_CHECK(static_cast<int>(ca.size()) == num_k() * num_fcs(),
               "ca_accumulator::add_values: ca must hold n_K * num_fcs = ", num_k() * num_fcs(),
               " values, got ", ca.size());
    for (std::size_t i = 0; i < ca.size(); ++i)
      FASA_CHECK(ca[i] >= 0.0 && ca[i] <= 1.0, "ca_accumulator::add_values: ca[", i, "] = ", ca[i],
                 " is outside [0, 1]");
    accumulate(layer, unit, ca);
  }

  // Adds another accumulator's sums and steps (another thread, another calibration sample).
  void merge(const ca_accumulator& other) {
    FASA_CHECK(other.fcs_ == fcs_ && other.config_.num_layers == config_.num_layers &&
                   other.config_.num_q_heads == config_.num_q_heads &&
                   other.config_.num_kv_heads == config_.num_kv_heads &&
                   other.config_.granularity == config_.granularity &&
                   other.config_.k_values == config_.k_values,
               "ca_accumulator::merge: the accumulators measure different shapes, windows, "
               "granularities or FC maps");
    for (std::size_t i = 0; i < sums_.size(); ++i) sums_[i] += other.sums_[i];
    for (std::size_t i = 0; i < steps_.size(); ++i) steps_[i] += other.steps_[i];
  }

  std::int64_t steps(int layer, int unit) const {
    check_slot(layer, unit, "steps");
    return steps_[slot(layer, unit)];
  }
  // The number of steps every (layer, unit) got; throws when they differ (a calibration loop
  // that skipped a unit) or when nothing was added.
  std::int64_t uniform_steps() const {
    const std::int64_t n = steps_.front();
    for (int l = 0; l < config_.num_layers; ++l)
      for (int u = 0; u < num_units(); ++u)
        FASA_CHECK(steps_[slot(l, u)] == n, "ca_accumulator: layer ", l, " unit ", u, " has ",
                   steps_[slot(l, u)], " steps but layer 0 unit 0 has ", n);
    FASA_CHECK(n >= 1, "ca_accumulator: no decode step was added");
    return n;
  }

  // Mean CA over the added steps, [n_K, num_layers, num_units, num_fcs]. Throws when a
  // (layer, unit) has no step: its mean is undefined and must not become a silent NaN or 0.
  ca_table mean() const {
    ca_table t;
    t.k_values = config_.k_values;
    t.num_layers = config_.num_layers;
    t.num_units = num_units();
    t.num_fcs = num_fcs();
    t.values.resize(sums_.size());
    for (int m = 0; m < num_k(); ++m)
      for (int l = 0; l < config_.num_layers; ++l)
        for (int u = 0; u < num_units(); ++u) {
          const std::int64_t n = steps_[slot(l, u)];
          FASA_CHECK(n >= 1, "ca_accumulator::mean: layer ", l, " unit ", u,
                     " has no decode step, so its mean CA is undefined");
          for (int i = 0; i < num_fcs(); ++i) {
            const std::size_t at = t.offset(m, l, u, i);
            t.values[at] = sums_[at] / static_cast<double>(n);
          }
        }
    return t;
  }

 private:
  std::size_t slot(int layer, int unit) const {
    return static_cast<std::size_t>(layer) * static_cast<std::size_t>(num_units()) +
           static_cast<std::size_t>(unit);
  }
  void check_slot(int layer, int unit, const char* fn) const {
    FASA_CHECK(layer >= 0 && layer < config_.num_layers, "ca_accumulator::", fn, ": layer ", layer,
               " outside [0, num_layers=", config_.num_layers, ")");
    FASA_CHECK(unit >= 0 && unit < num_units(), "ca_accumulator::", fn, ": unit ", unit,
               " outside [0, ", num_units(), ") (", to_string(config_.granularity),
               " granularity)");
  }
  void accumulate(int layer, int unit, std::span<const double> ca) {
    const std::size_t nf = static_cast<std::size_t>(num_fcs());
    for (int m = 0; m < num_k(); ++m) {
      double* dst = sums_.data() +
                    ((static_cast<std::size_t>(m) * static_cast<std::size_t>(config_.num_layers) +
                      static_cast<std::size_t>(layer)) *
                         static_cast<std::size_t>(num_units()) +
                     static_cast<std::size_t>(unit)) *
                        nf;
      for (std::size_t i = 0; i < nf; ++i) dst[i] += ca[static_cast<std::size_t>(m) * nf + i];
    }
    ++steps_[slot(layer, unit)];
  }

  fc_table fcs_;
  ca_config config_;
  std::vector<double> sums_;         // [n_K, num_layers, num_units, num_fcs]
  std::vector<std::int64_t> steps_;  // [num_layers, num_units]
  std::vector<double> step_ca_;      // [n_K, num_fcs], one step's CA
  ca_workspace ws_;
};

}  // namespace fasa::calib
