// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Host top-k over one row of scores: the selection step of TIP and of the oracle (FASA Eq. 7,
// TopK-I). Deterministic: equal scores keep the lower token index, and NaN ranks below
// everything, so a NaN can never push a finite score out (tests still treat NaN as a failure).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "fasa/core/budget.hpp"
#include "fasa/core/error.hpp"

namespace fasa {

// Ranking key: NaN becomes -inf so the order stays a strict weak order.
inline float topk_rank_key(float s) {
  return std::isnan(s) ? -std::numeric_limits<float>::infinity() : s;
}

// True when token a ranks before token b: higher score, then lower index.
inline bool topk_ranks_before(std::span<const float> scores, std::int32_t a, std::int32_t b) {
  const float sa = topk_rank_key(scores[static_cast<std::size_t>(a)]);
  const float sb = topk_rank_key(scores[static_cast<std::size_t>(b)]);
  return sa > sb || (sa == sb && a < b);
}

// Appends to `out` the forced tokens of a length-t sequence in priority order (current, sinks,
// recent), without duplicates, at most `limit` of them. The three groups are index ranges, so a
// duplicate is found by range arithmetic rather than by searching `out`.
inline void append_forced_tokens(const forced_tokens& f, std::int64_t t, std::int64_t limit,
                                 std::vector<std::int32_t>& out) {
  const std::int64_t start = static_cast<std::int64_t>(out.size());
  const auto room = [&] { return static_cast<std::int64_t>(out.size()) - start < limit; };
  const bool current = f.current && t > 0;
  const std::int64_t sinks = std::min<std::int64_t>(f.sinks, t);
  if (current && room()) out.push_back(static_cast<std::int32_t>(t - 1));
  for (std::int64_t i = 0; i < sinks && room(); ++i)
    if (!(current && i == t - 1)) out.push_back(static_cast<std::int32_t>(i));
  // (the recent loop runs only when every sink fitted, so i < sinks means "already in")
  for (std::int64_t i = t - 1; i >= std::max<std::int64_t>(0, t - f.recent) && room(); --i)
    if (!(current && i == t - 1) && i >= sinks) out.push_back(static_cast<std::int32_t>(i));
}

// Writes the indices of the k best of `scores` (one score per cached token) into `out`,
// sorted ascending. Forced tokens come first and take budget slots. `scratch` is reused
// between calls to avoid allocation on the decode path.
inline void select_top_k(std::span<const float> scores, std::int64_t k, const forced_tokens& forced,
                         std::vector<std::int32_t>& out, std::vector<std::int32_t>& scratch) {
  const auto t = static_cast<std::int64_t>(scores.size());
  FASA_CHECK(k >= 1, "top-k needs k >= 1, got ", k);
  FASA_CHECK(t <= std::numeric_limits<std::int32_t>::max(),
             "too many tokens for int32 indices: ", t);
  k = std::min(k, t);
  out.clear();
  if (forced.any()) append_forced_tokens(forced, t, k, out);
  std::sort(out.begin(), out.end());  // the forced tokens, sorted for the lookup below
  const auto num_forced = static_cast<std::ptrdiff_t>(out.size());
  const auto need = k - static_cast<std::int64_t>(num_forced);
  if (need > 0) {
    scratch.resize(static_cast<std::size_t>(t));
    std::int64_t n = 0;
    for (std::int64_t i = 0; i < t; ++i) {
      const auto idx = static_cast<std::int32_t>(i);
      if (num_forced > 0 && std::binary_search(out.begin(), out.begin() + num_forced, idx))
        continue;
      scratch[static_cast<std::size_t>(n++)] = idx;
    }
    const auto better = [&](std::int32_t a, std::int32_t b) {
      return topk_ranks_before(scores, a, b);
    };
    if (need < n)
      std::nth_element(scratch.begin(), scratch.begin() + need, scratch.begin() + n, better);
    out.insert(out.end(), scratch.begin(), scratch.begin() + std::min(need, n));
  }
  std::sort(out.begin(), out.end());
}

}  // namespace fasa
