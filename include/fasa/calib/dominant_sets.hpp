// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Dominant-FC choice from mean contextual agreement (FASA Eq. 5, Alg. 1), and the statistics
// that describe a calibration: how stable two choices are (FASA Table 10) and how sparse the
// CA map is (FASA Table 9).
//
// Eq. 5 maximises sum_{i in I} E[CA_K^{l,h,i}] over sets I of N_tip FCs. The objective adds up
// per FC, so the answer is the N_tip FCs of highest mean CA, per (layer, unit), with the same
// N_tip everywhere (FASA Sec. 4.1). Ties go to the lower FC index, so the choice is unique.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <numeric>
#include <span>
#include <vector>

#include "fasa/calib/contextual_agreement.hpp"
#include "fasa/core/error.hpp"

namespace fasa::calib {

// [layer][unit][n_tip] FC indices, each unit's list ascending: what dominant_plan takes one
// layer of (fasa/compose/dominant_plan.hpp).
using dominant_fc_sets = std::vector<std::vector<std::vector<int>>>;

// The n_tip FCs of highest CA among ca: [num_fcs] (ties: lower FC index), ascending.
inline std::vector<int> top_fcs(std::span<const double> ca, int n_tip) {
  const auto nf = static_cast<int>(ca.size());
  FASA_CHECK(n_tip >= 1 && n_tip <= nf, "N_tip (", n_tip, ") must be between 1 and head_dim/2 (",
             nf, ")");
  for (int i = 0; i < nf; ++i)
    FASA_CHECK(!std::isnan(ca[static_cast<std::size_t>(i)]), "top_fcs: the mean CA of FC ", i,
               " is NaN");
  std::vector<int> order(static_cast<std::size_t>(nf));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + n_tip, order.end(), [&](int a, int b) {
    const double ca_a = ca[static_cast<std::size_t>(a)];
    const double ca_b = ca[static_cast<std::size_t>(b)];
    return ca_a > ca_b || (ca_a == ca_b && a < b);
  });
  order.resize(static_cast<std::size_t>(n_tip));
  std::sort(order.begin(), order.end());
  return order;
}

// FASA Alg. 1: per (layer, unit), the top-n_tip FCs by mean CA at window k (one of the table's
// k_values). Returns [layer][unit][n_tip], each list ascending.
inline dominant_fc_sets choose_dominant_fcs(const ca_table& mean_ca, int k, int n_tip) {
  mean_ca.validate();
  FASA_CHECK(n_tip >= 1 && n_tip <= mean_ca.num_fcs, "N_tip (", n_tip,
             ") must be between 1 and head_dim/2 (", mean_ca.num_fcs, ")");
  const int m = mean_ca.k_index(k);
  dominant_fc_sets out(static_cast<std::size_t>(mean_ca.num_layers));
  for (int l = 0; l < mean_ca.num_layers; ++l) {
    auto& layer = out[static_cast<std::size_t>(l)];
    layer.reserve(static_cast<std::size_t>(mean_ca.num_units));
    for (int u = 0; u < mean_ca.num_units; ++u)
      layer.push_back(top_fcs(mean_ca.unit_values(m, l, u), n_tip));
  }
  return out;
}

// Mean over (layer, unit) of |A ∩ B| / N_tip: the share of dominant FCs two calibrations agree
// on (FASA Table 10 reports it in percent between calibration datasets). Both arrays must have
// the same shape and distinct FCs per unit; the order inside a unit's list does not matter.
inline double overlap(const dominant_fc_sets& a, const dominant_fc_sets& b) {
  FASA_CHECK(!a.empty() && a.size() == b.size(), "overlap: the dominant sets have ", a.size(),
             " and ", b.size(), " layers; both must have the same positive number");
  double sum = 0.0;
  std::int64_t units = 0;
  for (std::size_t l = 0; l < a.size(); ++l) {
    FASA_CHECK(!a[l].empty() && a[l].size() == b[l].size(), "overlap: layer ", l, " has ",
               a[l].size(), " and ", b[l].size(),
               " units; both must have the same positive number");
    for (std::size_t u = 0; u < a[l].size(); ++u) {
      std::vector<int> sa = a[l][u];
      std::vector<int> sb = b[l][u];
      FASA_CHECK(!sa.empty() && sa.size() == sb.size(), "overlap: layer ", l, " unit ", u, " has ",
                 sa.size(), " and ", sb.size(),
                 " dominant FCs; N_tip must be the same positive number");
      std::sort(sa.begin(), sa.end());
      std::sort(sb.begin(), sb.end());
      FASA_CHECK(std::adjacent_find(sa.begin(), sa.end()) == sa.end() &&
                     std::adjacent_find(sb.begin(), sb.end()) == sb.end(),
                 "overlap: layer ", l, " unit ", u, " names an FC twice");
      std::vector<int> common;
      std::set_intersection(sa.begin(), sa.end(), sb.begin(), sb.end(), std::back_inserter(common));
      sum += static_cast<double>(common.size()) / static_cast<double>(sa.size());
      ++units;
    }
  }
  return sum / static_cast<double>(units);
}

// Share of the (layer, unit, FC) entries of a CA map at one window K that are "dominant"
// (CA > dominant_above) and "non-dominant" (CA < non_dominant_below), as fractions in [0, 1].
// FASA Table 9 reports them in percent at K = 256 with the thresholds 0.4 and 0.15: 0.17-0.79 %
// dominant and 89.5-95.5 % non-dominant across ten models.
struct ca_sparsity {
  double dominant = 0.0;      // share with CA > dominant_above
  double non_dominant = 0.0;  // share with CA < non_dominant_below
  std::int64_t count = 0;     // entries counted: num_layers * num_units * num_fcs
};

inline ca_sparsity sparsity(const ca_table& mean_ca, int k, double dominant_above = 0.4,
                            double non_dominant_below = 0.15) {
  mean_ca.validate();
  FASA_CHECK(non_dominant_below <= dominant_above, "sparsity: the non-dominant threshold (",
             non_dominant_below, ") must not exceed the dominant one (", dominant_above, ")");
  const int m = mean_ca.k_index(k);
  std::int64_t hi = 0, lo = 0, n = 0;
  for (int l = 0; l < mean_ca.num_layers; ++l)
    for (int u = 0; u < mean_ca.num_units; ++u)
      for (double v : mean_ca.unit_values(m, l, u)) {
        hi += v > dominant_above;
        lo += v < non_dominant_below;
        ++n;
      }
  return {static_cast<double>(hi) / static_cast<double>(n),
          static_cast<double>(lo) / static_cast<double>(n), n};
}

}  // namespace fasa::calib
