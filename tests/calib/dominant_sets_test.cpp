// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// Dominant-FC choice (FASA Eq. 5, Alg. 1) with its tie rule, the overlap of two choices (FASA
// Table 10) and the sparsity shares (FASA Table 9), on hand-made CA tables.

#include <vector>

#include "fasa/calib/dominant_sets.hpp"
#include "support.hpp"

using fasa::calib::ca_table;
using fasa::calib::choose_dominant_fcs;
using fasa::calib::dominant_fc_sets;

namespace {

// Two windows, 2 layers, 2 units, 4 FCs. Window 64 holds the interesting rows; window 16 holds
// the reverse ranking, so reading the wrong window changes every answer.
ca_table hand_table() {
  ca_table t;
  t.k_values = {16, 64};
  t.num_layers = 2;
  t.num_units = 2;
  t.num_fcs = 4;
  const std::vector<std::vector<double>> k64 = {
      {0.10, 0.50, 0.50, 0.20},  // layer 0 unit 0: FC 1 and 2 tie
      {0.30, 0.30, 0.30, 0.30},  // layer 0 unit 1: all tie
      {0.90, 0.00, 0.05, 0.45},  // layer 1 unit 0
      {0.00, 0.12, 0.41, 1.00},  // layer 1 unit 1
  };
  for (int m = 0; m < 2; ++m)
    for (const auto& row : k64)
      for (int i = 0; i < 4; ++i)
        t.values.push_back(m == 1 ? row[static_cast<std::size_t>(i)]
                                  : 1.0 - row[static_cast<std::size_t>(i)]);
  return t;
}

}  // namespace

TEST_CASE("calib: dominant sets are the top-N_tip FCs by mean CA, ties to the lower FC") {
  const ca_table t = hand_table();
  t.validate();
  CHECK(choose_dominant_fcs(t, 64, 1) == dominant_fc_sets{{{1}, {0}}, {{0}, {3}}});
  CHECK(choose_dominant_fcs(t, 64, 2) == dominant_fc_sets{{{1, 2}, {0, 1}}, {{0, 3}, {2, 3}}});
  CHECK(choose_dominant_fcs(t, 64, 3) ==
        dominant_fc_sets{{{1, 2, 3}, {0, 1, 2}}, {{0, 2, 3}, {1, 2, 3}}});
  CHECK(choose_dominant_fcs(t, 64, 4) ==
        dominant_fc_sets{{{0, 1, 2, 3}, {0, 1, 2, 3}}, {{0, 1, 2, 3}, {0, 1, 2, 3}}});
  // the other window ranks in reverse: 1 - CA
  CHECK(choose_dominant_fcs(t, 16, 1) == dominant_fc_sets{{{0}, {0}}, {{1}, {0}}});
  // the output is ascending even when the ranking is not
  CHECK(fasa::calib::top_fcs(std::vector<double>{0.1, 0.2, 0.9, 0.8, 0.3}, 3) ==
        std::vector<int>{2, 3, 4});
}

TEST_CASE("calib: dominant set choice rejects a bad N_tip or a window that was not calibrated") {
  const ca_table t = hand_table();
  CHECK_THROWS_WITH_AS(choose_dominant_fcs(t, 64, 0),
                       doctest::Contains("N_tip (0) must be between 1 and head_dim/2 (4)"),
                       fasa::error);
  CHECK_THROWS_WITH_AS(choose_dominant_fcs(t, 64, 5),
                       doctest::Contains("N_tip (5) must be between 1 and head_dim/2 (4)"),
                       fasa::error);
  CHECK_THROWS_WITH_AS(choose_dominant_fcs(t, 128, 2),
                       doctest::Contains("K = 128 is not one of the calibrated k_values [16, 64]"),
                       fasa::error);
  ca_table bad = t;
  bad.values[5] = 1.5;
  CHECK_THROWS_WITH_AS(choose_dominant_fcs(bad, 64, 2), doctest::Contains("value 5 is 1.5"),
                       fasa::error);
  bad = t;
  bad.values.pop_back();
  CHECK_THROWS_WITH_AS(choose_dominant_fcs(bad, 64, 2), doctest::Contains("got 31"), fasa::error);
}

TEST_CASE("calib: overlap of two dominant-set arrays is the mean share of common FCs") {
  const dominant_fc_sets a = {{{0, 1}, {2, 3}}, {{4, 5}, {6, 7}}};
  const dominant_fc_sets b = {{{1, 0}, {3, 4}}, {{8, 9}, {7, 6}}};
  // per unit: 2/2, 1/2, 0/2, 2/2
  CHECK(fasa::calib::overlap(a, b) == doctest::Approx(0.625));
  CHECK(fasa::calib::overlap(b, a) == doctest::Approx(0.625));
  CHECK(fasa::calib::overlap(a, a) == 1.0);
  const dominant_fc_sets c = {{{0, 1, 2}}};
  const dominant_fc_sets d = {{{2, 5, 6}}};
  CHECK(fasa::calib::overlap(c, d) == doctest::Approx(1.0 / 3.0));

  CHECK_THROWS_WITH_AS(fasa::calib::overlap(a, c), doctest::Contains("2 and 1 layers"),
                       fasa::error);
  const dominant_fc_sets fewer_units = {{{0, 1}}, {{4, 5}, {6, 7}}};
  CHECK_THROWS_WITH_AS(fasa::calib::overlap(a, fewer_units),
                       doctest::Contains("layer 0 has 2 and 1 units"), fasa::error);
  const dominant_fc_sets other_n_tip = {{{0, 1}, {2, 3}}, {{4, 5}, {6, 7, 8}}};
  CHECK_THROWS_WITH_AS(fasa::calib::overlap(a, other_n_tip),
                       doctest::Contains("layer 1 unit 1 has 2 and 3 dominant FCs"), fasa::error);
  const dominant_fc_sets twice = {{{0, 0}, {2, 3}}, {{4, 5}, {6, 7}}};
  CHECK_THROWS_WITH_AS(fasa::calib::overlap(a, twice),
                       doctest::Contains("layer 0 unit 0 names an FC twice"), fasa::error);
}

TEST_CASE("calib: sparsity shares count CA > 0.4 and CA < 0.15 at one window") {
  const ca_table t = hand_table();
  // window 64, 16 entries: above 0.4: 0.50 0.50 0.90 0.45 0.41 1.00 -> 6;
  // below 0.15: 0.10 0.00 0.05 0.00 0.12 -> 5
  const auto s = fasa::calib::sparsity(t, 64);
  CHECK(s.count == 16);
  CHECK(s.dominant == doctest::Approx(6.0 / 16.0));
  CHECK(s.non_dominant == doctest::Approx(5.0 / 16.0));
  // window 16 holds 1 - CA, counted here from the table itself (14 above, 2 below)
  const auto r = fasa::calib::sparsity(t, 16);
  int hi = 0, lo = 0;
  for (std::size_t x = 0; x < 16; ++x) {
    hi += t.values[x] > 0.4;
    lo += t.values[x] < 0.15;
  }
  CHECK(hi == 14);
  CHECK(lo == 2);
  CHECK(r.dominant == doctest::Approx(hi / 16.0));
  CHECK(r.non_dominant == doctest::Approx(lo / 16.0));
  CHECK(r.dominant != s.dominant);
  // thresholds are strict: a CA of exactly 0.4 or 0.15 is in neither class
  ca_table edge;
  edge.k_values = {8};
  edge.num_layers = edge.num_units = 1;
  edge.num_fcs = 4;
  edge.values = {0.4, 0.15, 0.4000001, 0.1499999};
  const auto e = fasa::calib::sparsity(edge, 8);
  CHECK(e.dominant == 0.25);
  CHECK(e.non_dominant == 0.25);
  // other thresholds
  const auto f = fasa::calib::sparsity(edge, 8, 0.3, 0.2);
  CHECK(f.dominant == 0.5);
  CHECK(f.non_dominant == 0.5);
  CHECK_THROWS_WITH_AS(fasa::calib::sparsity(edge, 8, 0.1, 0.2),
                       doctest::Contains("non-dominant threshold (0.2) must not exceed"),
                       fasa::error);
}
