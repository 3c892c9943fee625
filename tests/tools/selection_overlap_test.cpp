// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0

// fasa-eval overlap's set arithmetic (tools/eval/selection_overlap.hpp): a hand-made sequence of
// selections whose overlaps are worked out below by hand, and random sequences against the same
// figures computed with std::set, step by step, the way the definitions read.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "../tools/eval/selection_overlap.hpp"

namespace {

using fasa::tools::eval::intersection_size;
using fasa::tools::eval::kv_group_rows;
using fasa::tools::eval::overlap_tracker;
using fasa::tools::eval::sorted_union;
using ids = std::vector<std::int32_t>;

}  // namespace

TEST_CASE("selection overlap: intersection and union of ascending index lists") {
  const ids a{1, 3, 5, 7}, b{3, 4, 5, 8, 9}, none{};
  CHECK(intersection_size(a, b) == 2);
  CHECK(intersection_size(b, a) == 2);
  CHECK(intersection_size(a, none) == 0);
  CHECK(intersection_size(a, a) == 4);
  CHECK(sorted_union(a, b) == ids{1, 3, 4, 5, 7, 8, 9});
  CHECK(sorted_union(none, b) == b);
}

TEST_CASE("selection overlap: a hand-made sequence of four steps, lags 1, 2, 3") {
  // Step i appended token 9 + i. The sets and, by hand, each step's figures:
  //   S0 {1,3,5,7}
  //   S1 {1,3,5,10}  lag 1: ∩S0 {1,3,5} 3/4; new (> 9) {10} 1/4
  //   S2 {1,2,3,11}  lag 1: ∩S1 {1,3} 2/4; new (> 10) {11} 1/4
  //                  lag 2: ∩S0 {1,3} 2/4; ∩(S1∪S0 = {1,3,5,7,10}) {1,3} 2/4; new (> 9) {11} 1/4
  //   S3 {2,5,10,12} lag 1: ∩S2 {2} 1/4; new (> 11) {12} 1/4
  //                  lag 2: ∩S1 {5,10} 2/4; ∩(S2∪S1 = {1,2,3,5,10,11}) {2,5,10} 3/4;
  //                         new (> 10) {12} 1/4
  //                  lag 3: ∩S0 {5} 1/4; ∩(S2∪S1∪S0) {2,5,10} 3/4; new (> 9) {10,12} 2/4
  // fetched = 1 - the union's share (the baseline is the set itself); cached = |the union| / 4:
  //   lag 1: |S0|, |S1|, |S2| = 4 each; lag 2: |S1∪S0| 5, |S2∪S1| 6; lag 3: |S2∪S1∪S0| 7.
  overlap_tracker t({1, 2, 3});
  const std::vector<ids> steps{{1, 3, 5, 7}, {1, 3, 5, 10}, {1, 2, 3, 11}, {2, 5, 10, 12}};
  for (std::size_t i = 0; i < steps.size(); ++i) t.add(steps[i], 9 + static_cast<std::int64_t>(i));
  const auto& s = t.totals();
  REQUIRE(s.size() == 3);
  // lag 1: steps 1, 2, 3
  CHECK(s[0].steps == 3);
  CHECK(s[0].overlap == doctest::Approx(0.75 + 0.5 + 0.25));
  CHECK(s[0].with_union == doctest::Approx(0.75 + 0.5 + 0.25));
  CHECK(s[0].fresh == doctest::Approx(0.25 + 0.25 + 0.25));
  CHECK(s[0].fetched == doctest::Approx(0.25 + 0.5 + 0.75));
  CHECK(s[0].cached == doctest::Approx(3.0));
  // lag 2: steps 2, 3
  CHECK(s[1].steps == 2);
  CHECK(s[1].overlap == doctest::Approx(0.5 + 0.5));
  CHECK(s[1].with_union == doctest::Approx(0.5 + 0.75));
  CHECK(s[1].fresh == doctest::Approx(0.25 + 0.25));
  CHECK(s[1].fetched == doctest::Approx(0.5 + 0.25));
  CHECK(s[1].cached == doctest::Approx(1.25 + 1.5));
  // lag 3: step 3
  CHECK(s[2].steps == 1);
  CHECK(s[2].overlap == doctest::Approx(0.25));
  CHECK(s[2].with_union == doctest::Approx(0.75));
  CHECK(s[2].fresh == doctest::Approx(0.5));
  CHECK(s[2].fetched == doctest::Approx(0.25));
  CHECK(s[2].cached == doctest::Approx(1.75));
}

TEST_CASE("selection overlap: a baseline other than the set, and forget()") {
  overlap_tracker t({1});
  t.add(ids{0, 1, 2, 3}, 3, 8);
  t.add(ids{0, 1, 4, 5}, 5, 8);  // misses {4, 5}: 2 of the baseline's 8 rows
  CHECK(t.totals()[0].fetched == doctest::Approx(0.25));
  CHECK(t.totals()[0].cached == doctest::Approx(0.5));  // the 4 rows of the first step, of 8
  CHECK(t.totals()[0].overlap == doctest::Approx(0.5));
  t.forget();
  t.add(ids{0, 1, 4, 5}, 6);  // nothing before it: not scored
  CHECK(t.totals()[0].steps == 1);
  t.add(ids{0, 1, 4, 7}, 7);  // 3 of 4 again in S_{t-1}; 7 is new
  CHECK(t.totals()[0].steps == 2);
  CHECK(t.totals()[0].overlap == doctest::Approx(0.5 + 0.75));
  CHECK(t.totals()[0].fresh == doctest::Approx(0.5 + 0.25));  // {4, 5} > 3, then {7} > 6
}

TEST_CASE("selection overlap: random sequences against std::set, lags 1, 2, 5") {
  std::mt19937 rng(7);
  const std::vector<int> lags{1, 2, 5};
  for (int trial = 0; trial < 20; ++trial) {
    const int steps = 12, first_context = 30 + trial;
    std::vector<std::set<std::int32_t>> sets;
    overlap_tracker t(lags);
    std::vector<double> overlap(3, 0), with_union(3, 0), fresh(3, 0), held(3, 0);
    std::vector<std::int64_t> counted(3, 0);
    for (int i = 0; i < steps; ++i) {
      const std::int32_t newest = first_context + i;  // tokens 0 .. newest exist at step i
      std::set<std::int32_t> s;
      const int keep = 1 + static_cast<int>(rng() % 12);
      while (static_cast<int>(s.size()) < keep)
        s.insert(static_cast<std::int32_t>(rng() % static_cast<unsigned>(newest + 1)));
      if (rng() % 3 == 0) s.insert(newest);  // the token appended at this step, now and then
      const double n = static_cast<double>(s.size());
      for (std::size_t li = 0; li < lags.size(); ++li) {
        const int k = lags[li];
        if (i < k) continue;
        std::set<std::int32_t> cache;
        for (int j = 1; j <= k; ++j) cache.insert(sets[i - j].begin(), sets[i - j].end());
        double same = 0, hit = 0, added = 0;
        for (auto x : s) {
          same += sets[i - k].count(x);
          hit += cache.count(x);
          added += x > newest - k;  // the token appended at step i - k was newest - k
        }
        overlap[li] += same / n, with_union[li] += hit / n, fresh[li] += added / n;
        held[li] += static_cast<double>(cache.size()) / n;
        ++counted[li];
      }
      sets.push_back(s);
      t.add(ids(s.begin(), s.end()), newest);
    }
    for (std::size_t li = 0; li < lags.size(); ++li) {
      INFO("trial ", trial, " lag ", lags[li]);
      const auto& got = t.totals()[li];
      CHECK(got.steps == counted[li]);
      CHECK(got.overlap == doctest::Approx(overlap[li]));
      CHECK(got.with_union == doctest::Approx(with_union[li]));
      CHECK(got.fresh == doctest::Approx(fresh[li]));
      CHECK(got.fetched == doctest::Approx(counted[li] - with_union[li]));
      CHECK(got.cached == doctest::Approx(held[li]));
    }
  }
}

TEST_CASE("selection overlap: a KV head's rows are the union of its query heads' selections") {
  fasa::selection sel;
  sel.all = false;
  sel.granularity = fasa::selection_granularity::query_head;
  sel.units = 4;  // two KV heads of two query heads each
  sel.per_unit = 3;
  sel.tokens = {0, 4, 9, /**/ 1, 4, 8, /**/ 2, 3, 5, /**/ 2, 3, 5};
  CHECK(kv_group_rows(sel, 0, 2) == ids{0, 1, 4, 8, 9});
  CHECK(kv_group_rows(sel, 1, 2) == ids{2, 3, 5});
  CHECK_THROWS_AS(kv_group_rows(sel, 2, 2), fasa::error);
}

TEST_CASE("selection overlap: malformed input is refused") {
  CHECK_THROWS_AS(overlap_tracker({}), fasa::error);
  CHECK_THROWS_AS(overlap_tracker({2, 1}), fasa::error);
  CHECK_THROWS_AS(overlap_tracker({0}), fasa::error);
  overlap_tracker t({1});
  CHECK_THROWS_AS(t.add(ids{3, 1}, 5), fasa::error);  // not ascending
  CHECK_THROWS_AS(t.add(ids{1, 1}, 5), fasa::error);  // a repeat
  CHECK_THROWS_AS(t.add(ids{}, 5), fasa::error);      // empty
  CHECK_THROWS_AS(t.add(ids{1, 6}, 5), fasa::error);  // past the newest token
}
