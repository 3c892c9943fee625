// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// How much of one decode step's token selection earlier steps already selected: the question a
// cache of recently fetched KV rows (FASA-M keeps the non-dominant key dims and the values in
// host memory and copies the chosen rows over the bus each step) must answer before it can save
// any traffic. Plain set arithmetic on ascending index lists, with no model, CLI or JSON, so the
// unit test checks it against sets it builds by hand (tests/tools/selection_overlap_test.cpp).
// The overlap protocol (overlap.hpp) feeds it the selections the model's layers report.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fasa/compose/selection.hpp"
#include "fasa/core/error.hpp"

namespace fasa::tools::eval {

// |a ∩ b|; a, b: token indices, each ascending without repeats.
inline std::int64_t intersection_size(std::span<const std::int32_t> a,
                                      std::span<const std::int32_t> b) {
  std::int64_t n = 0;
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] < b[j]) {
      ++i;
    } else if (b[j] < a[i]) {
      ++j;
    } else {
      ++n, ++i, ++j;
    }
  }
  return n;
}

// a ∪ b, ascending; a, b ascending without repeats.
inline std::vector<std::int32_t> sorted_union(std::span<const std::int32_t> a,
                                              std::span<const std::int32_t> b) {
  std::vector<std::int32_t> out;
  out.reserve(a.size() + b.size());
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

// The rows KV head `kv_head` serves at one step under query_head selection: the union of the
// selections of its `group` query heads (kv_head * group .. kv_head * group + group - 1),
// ascending.
inline std::vector<std::int32_t> kv_group_rows(const selection& sel, int kv_head, int group) {
  FASA_CHECK(!sel.all && sel.granularity == selection_granularity::query_head && group >= 1 &&
                 kv_head >= 0 && (kv_head + 1) * group <= sel.units,
             "kv_group_rows: KV head ", kv_head, " of groups of ", group,
             " needs a per-query-head selection of at least ", (kv_head + 1) * group,
             " units, got ", sel.all ? 0 : sel.units, sel.all ? " (every token)" : "");
  std::vector<std::int32_t> rows;
  for (int i = 0; i < group; ++i) {
    const auto chosen = sel.unit_tokens(kv_head * group + i);
    rows = i == 0 ? std::vector<std::int32_t>(chosen.begin(), chosen.end())
                  : sorted_union(rows, chosen);
  }
  return rows;
}

// One selection unit's (or one KV head's) selections over consecutive decode steps, and the
// running sums of how each step's set relates to the sets of `lags` steps before it. A lag k
// is scored from the step that has k earlier steps on (the first k steps have nothing to
// compare with), so with S steps lag k averages over S - k of them.
class overlap_tracker {
 public:
  // Per lag, sums over the steps scored at that lag.
  struct sums {
    // C_k = S_{t-1} ∪ ... ∪ S_{t-k}: the rows a cache of the last k steps' selections holds.
    double overlap = 0;     // |S_t ∩ S_{t-k}| / |S_t|
    double with_union = 0;  // |S_t ∩ C_k| / |S_t|: that cache's hit rate
    double fresh = 0;       // |{j in S_t : j did not exist at t-k}| / |S_t|: appended since
    double fetched = 0;     // |S_t \ C_k| / baseline: the rows that cache still fetches
    double cached = 0;      // |C_k| / baseline: the rows it holds
    std::int64_t steps = 0;
  };

  // lags: ascending, distinct, each >= 1.
  explicit overlap_tracker(std::vector<int> lags) : lags_(std::move(lags)), sums_(lags_.size()) {
    FASA_CHECK(!lags_.empty(), "overlap_tracker: no lags");
    for (std::size_t i = 0; i < lags_.size(); ++i)
      FASA_CHECK(lags_[i] >= 1 && (i == 0 || lags_[i] > lags_[i - 1]),
                 "overlap_tracker: lags must be ascending, distinct and >= 1; got ", lags_[i],
                 i ? " after " : "", i ? std::to_string(lags_[i - 1]) : std::string());
  }

  // The selection of the next step. chosen: token indices, ascending without repeats, not empty;
  // newest: the index of the token this step appended (every index <= newest existed at this
  // step); baseline: the rows `fetched` is counted against (0: |chosen|).
  void add(std::span<const std::int32_t> chosen, std::int64_t newest, double baseline = 0) {
    FASA_CHECK(!chosen.empty(), "overlap_tracker::add: an empty selection");
    FASA_CHECK(std::is_sorted(chosen.begin(), chosen.end()) &&
                   std::adjacent_find(chosen.begin(), chosen.end()) == chosen.end(),
               "overlap_tracker::add: the selection must be ascending without repeats");
    FASA_CHECK(chosen.back() <= newest, "overlap_tracker::add: token ", chosen.back(),
               " is past the newest token ", newest);
    const double n = static_cast<double>(chosen.size());
    if (baseline <= 0) baseline = n;
    // history_[0] is the previous step, history_[i] the step i + 1 before this one.
    std::vector<std::int32_t> cached;  // the union of the last i + 1 steps' sets
    std::size_t li = 0;
    for (std::size_t i = 0; i < history_.size() && li < lags_.size(); ++i) {
      const auto& [past, past_newest] = history_[i];
      cached = i == 0 ? past : sorted_union(cached, past);
      if (static_cast<int>(i) + 1 != lags_[li]) continue;
      auto& s = sums_[li++];
      const auto hit = intersection_size(chosen, cached);
      s.overlap += static_cast<double>(intersection_size(chosen, past)) / n;
      s.with_union += static_cast<double>(hit) / n;
      const auto first_new = std::upper_bound(chosen.begin(), chosen.end(), past_newest);
      s.fresh += static_cast<double>(chosen.end() - first_new) / n;
      s.fetched += (n - static_cast<double>(hit)) / baseline;
      s.cached += static_cast<double>(cached.size()) / baseline;
      s.steps += 1;
    }
    history_.emplace_front(std::vector<std::int32_t>(chosen.begin(), chosen.end()), newest);
    if (history_.size() > static_cast<std::size_t>(lags_.back())) history_.pop_back();
  }

  // Drops the history: the next step has no earlier one to compare with (a step whose budget
  // covered the cache selected nothing, so the steps around it are not consecutive selections).
  void forget() { history_.clear(); }

  const std::vector<int>& lags() const { return lags_; }
  const std::vector<sums>& totals() const { return sums_; }

 private:
  std::vector<int> lags_;
  std::vector<sums> sums_;
  std::deque<std::pair<std::vector<std::int32_t>, std::int64_t>> history_;
};

}  // namespace fasa::tools::eval
