// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// Contextual agreement (FASA Eq. 4) against a brute force written here (full std::sort, set
// intersection), its K >= t limit, the accumulator, and the property that cannot pass by
// accident: calibration through the real RoPE recovers an FC planted as dominant, in both
// layouts and both granularities.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "fasa/calib/contextual_agreement.hpp"
#include "fasa/calib/dominant_sets.hpp"
#include "fasa/policies/positional/rope.hpp"
#include "support.hpp"

using fasa::dim_pair;
using fasa::selection_granularity;
using fasa::calib::ca_accumulator;
using fasa::calib::ca_config;
using fasa::calib::fc_table;
using fasa::positional::fc_mapping;
using fasa::positional::rope;
using fasa::positional::rope_layout;

namespace {

// CA by the book: per-FC and full scores from the definition (the library's documented
// arithmetic: double products, FC order, rounded to float), every row fully sorted by
// (score desc, index asc), and the top-K sets intersected with std::set.
// q: [count, d]; keys: [t, d]; returns [n_K, num_fcs].
std::vector<double> brute_force_ca(const std::vector<float>& q, int count,
                                   const std::vector<float>& keys, std::int64_t t,
                                   const std::vector<dim_pair>& fcs, const std::vector<int>& ks) {
  const std::size_t d = fcs.size() * 2, nf = fcs.size(), tu = static_cast<std::size_t>(t);
  std::vector<double> qs(d, 0.0);
  for (int g = 0; g < count; ++g)
    for (std::size_t x = 0; x < d; ++x) qs[x] += q[static_cast<std::size_t>(g) * d + x];
  std::vector<std::vector<float>> per_fc(nf, std::vector<float>(tu));
  std::vector<float> full(tu);
  for (std::size_t j = 0; j < tu; ++j) {
    const float* k = keys.data() + j * d;
    double sum = 0.0;
    for (std::size_t i = 0; i < nf; ++i) {
      const auto a = static_cast<std::size_t>(fcs[i].first);
      const auto b = static_cast<std::size_t>(fcs[i].second);
      const double s = qs[a] * k[a] + qs[b] * k[b];
      per_fc[i][j] = static_cast<float>(s);
      sum += s;
    }
    full[j] = static_cast<float>(sum);
  }
  const auto sorted = [&](const std::vector<float>& s) {
    std::vector<int> idx(tu);
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](int a, int b) {
      return s[static_cast<std::size_t>(a)] > s[static_cast<std::size_t>(b)] ||
             (s[static_cast<std::size_t>(a)] == s[static_cast<std::size_t>(b)] && a < b);
    });
    return idx;
  };
  const std::vector<int> full_order = sorted(full);
  std::vector<double> out(ks.size() * nf);
  for (std::size_t i = 0; i < nf; ++i) {
    const std::vector<int> fc_order = sorted(per_fc[i]);
    for (std::size_t m = 0; m < ks.size(); ++m) {
      const std::size_t k = std::min<std::size_t>(static_cast<std::size_t>(ks[m]), tu);
      const std::set<int> a(full_order.begin(), full_order.begin() + static_cast<long>(k));
      std::size_t common = 0;
      for (std::size_t p = 0; p < k; ++p) common += a.count(fc_order[p]);
      out[m * nf + i] = static_cast<double>(common) / static_cast<double>(k);
    }
  }
  return out;
}

std::vector<dim_pair> pairs_of(const rope& pe) {
  std::vector<dim_pair> p;
  for (int i = 0; i < pe.num_fcs(); ++i) p.push_back(pe.fc_dims(i));
  return p;
}

// Post-RoPE keys [t, d]: random pre-RoPE rows rotated to positions 0..t-1.
std::vector<float> rotated_keys(const rope& pe, std::int64_t t, std::uint32_t seed) {
  const int d = pe.head_dim();
  std::vector<float> k = fasa::test::random_vector(static_cast<std::size_t>(t * d), seed);
  for (std::int64_t j = 0; j < t; ++j) pe.rotate(k.data() + j * d, j);
  return k;
}

void check_same_ca(const std::vector<double>& got, const std::vector<double>& want, int nf) {
  REQUIRE(got.size() == want.size());
  int bad = 0;
  std::string first;
  for (std::size_t x = 0; x < want.size(); ++x)
    if (got[x] != want[x] && bad++ < 5)
      first += "  K#" + std::to_string(x / static_cast<std::size_t>(nf)) + " FC " +
               std::to_string(x % static_cast<std::size_t>(nf)) + ": got " +
               std::to_string(got[x]) + " want " + std::to_string(want[x]) + "\n";
  INFO(bad, " CA values differ from the brute force\n", first);
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("calib: per-FC scores use each FC's two dims and add up to the full logit") {
  for (const rope& pe : {rope::interleaved(64, 10000.0), rope::rotate_half(128, 500000.0),
                         rope::rotate_half_adjacent_fcs(64, 10000.0)}) {
    CAPTURE(fasa::positional::to_string(pe.layout()));
    CAPTURE(pe.head_dim());
    const int d = pe.head_dim();
    const std::int64_t t = 97;
    const fc_table fcs(pe);
    const std::vector<float> q = fasa::test::random_vector(static_cast<std::size_t>(2 * d), 11);
    const std::vector<float> keys = rotated_keys(pe, t, 12);
    std::vector<float> per_fc(static_cast<std::size_t>(fcs.num_fcs() * t)), full(t);
    fasa::calib::fc_scores(q.data(), 2, keys.data(), t, fcs, per_fc, full);
    std::vector<float> want_full(t), got_sum(t);
    for (std::int64_t j = 0; j < t; ++j) {
      double dot = 0.0, sum = 0.0;
      for (int x = 0; x < d; ++x)
        dot += (static_cast<double>(q[x]) + q[d + x]) * keys[j * d + x];  // summed queries
      for (int i = 0; i < fcs.num_fcs(); ++i) {
        const dim_pair p = pe.fc_dims(i);
        const double qa = static_cast<double>(q[p.first]) + q[d + p.first];
        const double qb = static_cast<double>(q[p.second]) + q[d + p.second];
        const double want = qa * keys[j * d + p.first] + qb * keys[j * d + p.second];
        CHECK(per_fc[static_cast<std::size_t>(i * t + j)] == doctest::Approx(want).epsilon(1e-5));
        sum += per_fc[static_cast<std::size_t>(i * t + j)];
      }
      want_full[j] = static_cast<float>(dot);
      got_sum[j] = static_cast<float>(sum);
    }
    fasa::test::check_close(full, want_full, fasa::test::fp32_tol, "full score vs q . k");
    fasa::test::check_close(got_sum, want_full, fasa::test::fp32_tol, "sum of per-FC scores");
  }
}

TEST_CASE("calib: contextual agreement equals a brute force with a full sort") {
  const std::vector<int> ks = {1, 5, 64, 128, 256, 512, 1024, 2048};
  std::uint32_t seed = 100;
  for (const rope& pe : {rope::interleaved(64, 10000.0), rope::rotate_half(128, 10000.0),
                         rope::rotate_half_adjacent_fcs(64, 10000.0)}) {
    const fc_table fcs(pe);
    const std::vector<dim_pair> pairs = pairs_of(pe);
    for (std::int64_t t : {1, 2, 7, 97, 1000, 1500}) {
      for (int count : {1, 4}) {
        CAPTURE(fasa::positional::to_string(pe.layout()));
        CAPTURE(fasa::positional::to_string(pe.mapping()));
        CAPTURE(t);
        CAPTURE(count);
        const int d = pe.head_dim();
        const std::vector<float> q =
            fasa::test::random_vector(static_cast<std::size_t>(count * d), ++seed);
        const std::vector<float> keys = rotated_keys(pe, t, ++seed);
        std::vector<double> got(ks.size() * static_cast<std::size_t>(fcs.num_fcs()));
        fasa::calib::contextual_agreement(q.data(), count, keys.data(), t, fcs, ks, got);
        check_same_ca(got, brute_force_ca(q, count, keys, t, pairs, ks), fcs.num_fcs());
      }
    }
  }
}

TEST_CASE("calib: contextual agreement breaks ties by the lower token index") {
  // Small integer values: most scores tie, so only the tie rule decides the top-K sets.
  const rope pe = rope::interleaved(16, 10000.0);
  const fc_table fcs(pe);
  const std::int64_t t = 300;
  std::vector<float> q = fasa::test::random_vector(16, 7);
  std::vector<float> keys = fasa::test::random_vector(static_cast<std::size_t>(t * 16), 8);
  for (float& x : q) x = std::round(x);
  for (float& x : keys) x = std::round(x);
  const std::vector<int> ks = {3, 10, 50, 299, 300};
  std::vector<double> got(ks.size() * 8);
  fasa::calib::ca_workspace ws;
  fasa::calib::contextual_agreement(q.data(), 1, keys.data(), t, fcs, ks, got, ws);
  check_same_ca(got, brute_force_ca(q, 1, keys, t, pairs_of(pe), ks), 8);
  // the workspace is reused, including with a shorter sequence
  fasa::calib::contextual_agreement(q.data(), 1, keys.data(), 40, fcs, ks, got, ws);
  check_same_ca(got, brute_force_ca(q, 1, keys, 40, pairs_of(pe), ks), 8);
  // every score equal (a zero query): the top-K sets are the first K tokens of every row
  const std::vector<float> zero(16, 0.0f);
  fasa::calib::contextual_agreement(zero.data(), 1, keys.data(), t, fcs, ks, got, ws);
  check_same_ca(got, brute_force_ca(zero, 1, keys, t, pairs_of(pe), ks), 8);
  CHECK(std::count(got.begin(), got.end(), 1.0) == static_cast<long>(got.size()));
  // infinite scores: keys near the float limit give products that overflow float when the
  // double score is rounded; +-inf are ordered like any other value (ties by index)
  std::vector<float> huge = keys;
  for (std::size_t x = 0; x < huge.size(); x += 7)
    huge[x] = huge[x] > 0 ? 3e38f : (huge[x] < 0 ? -3e38f : 0.0f);
  fasa::calib::contextual_agreement(q.data(), 1, huge.data(), t, fcs, ks, got, ws);
  check_same_ca(got, brute_force_ca(q, 1, huge, t, pairs_of(pe), ks), 8);
}

TEST_CASE("calib: contextual agreement is 1 for every FC once K >= t") {
  const rope pe = rope::rotate_half(64, 10000.0);
  const fc_table fcs(pe);
  const std::int64_t t = 50;
  const std::vector<float> q = fasa::test::random_vector(64, 21);
  const std::vector<float> keys = rotated_keys(pe, t, 22);
  const std::vector<int> ks = {10, 50, 64, 4096};
  std::vector<double> ca(ks.size() * 32);
  fasa::calib::contextual_agreement(q.data(), 1, keys.data(), t, fcs, ks, ca);
  for (std::size_t i = 0; i < 32; ++i) {
    CAPTURE(i);
    CHECK(ca[32 + i] == 1.0);
    CHECK(ca[64 + i] == 1.0);
    CHECK(ca[96 + i] == 1.0);
  }
  // below t, random FCs do not agree perfectly with the full ranking
  CHECK(std::count(ca.begin(), ca.begin() + 32, 1.0) < 32);
}

TEST_CASE("calib: fc_table takes a positional encoding or an explicit table, and checks it") {
  const rope pe = rope::rotate_half(8, 10000.0);
  const fc_table from_pe(pe);
  const fc_table explicit_table(8, {{0, 4}, {1, 5}, {2, 6}, {3, 7}});
  CHECK(from_pe == explicit_table);
  CHECK_THROWS_WITH_AS(fc_table(8, {{0, 1}, {1, 2}, {4, 5}, {6, 7}}),
                       doctest::Contains("dim 1 belongs to FC 0 and to FC 1"), fasa::error);
  CHECK_THROWS_WITH_AS(fc_table(8, {{0, 1}, {2, 3}}), doctest::Contains("has 4 FCs, got 2"),
                       fasa::error);
  CHECK_THROWS_WITH_AS(fc_table(8, {{0, 1}, {2, 3}, {4, 5}, {6, 8}}),
                       doctest::Contains("FC 3 names dim 8 outside [0, head_dim=8)"), fasa::error);
}

TEST_CASE("calib: contextual agreement rejects NaN scores and bad arguments") {
  const rope pe = rope::interleaved(8, 10000.0);
  const fc_table fcs(pe);
  std::vector<float> q(8, 1.0f), keys(8 * 4, 1.0f);
  keys[2 * 8 + 3] = std::numeric_limits<float>::quiet_NaN();
  std::vector<double> out(4);
  const std::vector<int> ks = {2};
  CHECK_THROWS_WITH_AS(fasa::calib::contextual_agreement(q.data(), 1, keys.data(), 4, fcs, ks, out),
                       doctest::Contains("score of token 2 is NaN"), fasa::error);
  keys[2 * 8 + 3] = 0.0f;
  CHECK_THROWS_WITH_AS(fasa::calib::contextual_agreement(q.data(), 1, keys.data(), 0, fcs, ks, out),
                       doctest::Contains("t=0"), fasa::error);
  const std::vector<int> descending = {4, 2};
  std::vector<double> out2(8);
  CHECK_THROWS_WITH_AS(
      fasa::calib::contextual_agreement(q.data(), 1, keys.data(), 4, fcs, descending, out2),
      doctest::Contains("strictly ascending"), fasa::error);
  std::vector<double> wrong(3);
  CHECK_THROWS_WITH_AS(
      fasa::calib::contextual_agreement(q.data(), 1, keys.data(), 4, fcs, ks, wrong),
      doctest::Contains("out must hold n_K * num_fcs = 1 * 4 = 4 values, got 3"), fasa::error);
}

TEST_CASE("calib: accumulator means per-step CA, per layer and unit, in both granularities") {
  const rope pe = rope::interleaved(16, 10000.0);
  const int d = 16, nq = 4, nkv = 2, layers = 2;
  const std::int64_t cap = 64;
  const std::vector<int> ks = {4, 16};
  for (selection_granularity g :
       {selection_granularity::query_head, selection_granularity::kv_head}) {
    CAPTURE(fasa::to_string(g));
    ca_accumulator acc(pe, ca_config{layers, nq, nkv, g, ks});
    ca_accumulator per_unit(pe, ca_config{layers, nq, nkv, g, ks});
    const int units = acc.num_units(), qpu = g == selection_granularity::query_head ? 1 : 2;
    CHECK(units == (g == selection_granularity::query_head ? nq : nkv));
    std::vector<double> want(static_cast<std::size_t>(2 * layers * units * 8), 0.0);
    std::uint32_t seed = 300;
    const std::vector<std::int64_t> lengths = {20, 33, 64};
    for (std::int64_t t : lengths) {
      for (int l = 0; l < layers; ++l) {
        // keys laid out [kv_heads, capacity, head_dim]; the step reads the first t rows
        const std::vector<float> keys = fasa::test::random_vector(nkv * cap * d, ++seed);
        const std::vector<float> q = fasa::test::random_vector(nq * d, ++seed);
        acc.add_layer(l, q.data(), keys.data(), t, cap * d);
        for (int u = 0; u < units; ++u) {
          const int kv = g == selection_granularity::query_head ? u / 2 : u;
          const float* uq = q.data() + u * qpu * d;
          const float* uk = keys.data() + kv * cap * d;
          per_unit.add(l, u, uq, uk, t);
          std::vector<double> ca(2 * 8);
          fasa::calib::contextual_agreement(uq, qpu, uk, t, fasa::calib::fc_table(pe), ks, ca);
          for (int m = 0; m < 2; ++m)
            for (int i = 0; i < 8; ++i)
              want[static_cast<std::size_t>(((m * layers + l) * units + u) * 8 + i)] +=
                  ca[static_cast<std::size_t>(m * 8 + i)] / 3.0;
        }
      }
    }
    const fasa::calib::ca_table mean = acc.mean();
    CHECK(mean == per_unit.mean());
    CHECK(acc.uniform_steps() == 3);
    CHECK(acc.steps(1, units - 1) == 3);
    REQUIRE(mean.values.size() == want.size());
    for (std::size_t x = 0; x < want.size(); ++x) CHECK(mean.values[x] == doctest::Approx(want[x]));
    mean.validate();

    // merge adds steps and sums: the mean of two copies is the same mean
    ca_accumulator twice = acc;
    twice.merge(acc);
    CHECK(twice.uniform_steps() == 6);
    const auto twice_mean = twice.mean();
    for (std::size_t x = 0; x < want.size(); ++x)
      CHECK(twice_mean.values[x] == doctest::Approx(mean.values[x]));
  }
}

TEST_CASE("calib: accumulator refuses bad slots, missing steps and foreign merges") {
  const rope pe = rope::interleaved(8, 10000.0);
  ca_accumulator acc(pe, ca_config{2, 4, 2, selection_granularity::query_head, {2, 4}});
  std::vector<float> q(8, 1.0f), keys(8 * 4, 0.5f);
  CHECK_THROWS_WITH_AS(acc.add(2, 0, q.data(), keys.data(), 4),
                       doctest::Contains("layer 2 outside [0, num_layers=2)"), fasa::error);
  CHECK_THROWS_WITH_AS(acc.add(0, 4, q.data(), keys.data(), 4),
                       doctest::Contains("unit 4 outside [0, 4) (query_head granularity)"),
                       fasa::error);
  CHECK_THROWS_WITH_AS((void)acc.mean(), doctest::Contains("layer 0 unit 0 has no decode step"),
                       fasa::error);
  acc.add(0, 0, q.data(), keys.data(), 4);
  CHECK_THROWS_WITH_AS((void)acc.uniform_steps(), doctest::Contains("layer 0 unit 1 has 0 steps"),
                       fasa::error);
  const std::vector<double> bad = {0.5, 0.5, 0.5, 1.5, 0, 0, 0, 0};
  CHECK_THROWS_WITH_AS(acc.add_values(0, 1, bad), doctest::Contains("ca[3] = 1.5"), fasa::error);
  ca_accumulator other(pe, ca_config{2, 4, 2, selection_granularity::kv_head, {2, 4}});
  CHECK_THROWS_AS(acc.merge(other), fasa::error);
  CHECK_THROWS_WITH_AS(ca_accumulator(pe, ca_config{2, 4, 3, selection_granularity::query_head}),
                       doctest::Contains("num_q_heads (4) must be a multiple of num_kv_heads (3)"),
                       fasa::error);
  CHECK_THROWS_WITH_AS(
      ca_accumulator(pe, ca_config{2, 4, 2, selection_granularity::query_head, {}}),
      doctest::Contains("k_values must list at least one window K"), fasa::error);
}

namespace {

// Synthetic calibration with one FC planted as dominant per unit: q and k are small random
// vectors except on the planted FC's two dims, where both are large, so that FC's term decides
// the full logit. The vectors go through the real RoPE at their positions (keys at 0..t-1, the
// query at t-1) and the accumulator sees only post-RoPE tensors, as in a model. Returns the
// planted FC of each (layer, unit) and the accumulator.
struct planted_run {
  std::vector<std::vector<int>> planted;  // [layer][unit]
  fasa::calib::ca_table mean;
};

planted_run run_planted(const rope& pe, selection_granularity g) {
  const int d = pe.head_dim(), nf = pe.num_fcs(), nq = 8, nkv = 2, group = nq / nkv, layers = 3;
  const std::int64_t cap = 320;
  ca_accumulator acc(pe, ca_config{layers, nq, nkv, g, {16, 64, 128}});
  planted_run run;
  std::uint32_t seed = 1000;
  const auto plant_of = [&](int l, int u) { return (5 * l + 11 * u + 3) % nf; };
  for (int l = 0; l < layers; ++l) {
    std::vector<int> per_unit;
    for (int u = 0; u < acc.num_units(); ++u) per_unit.push_back(plant_of(l, u));
    run.planted.push_back(per_unit);
    // pre-RoPE keys [nkv, cap, d]: large on the planted FCs of every unit reading the KV head
    std::vector<float> keys = fasa::test::random_vector(nkv * cap * d, ++seed, 0.3f);
    const std::vector<float> big = fasa::test::random_vector(nkv * cap * d, ++seed, 3.0f);
    for (int u = 0; u < acc.num_units(); ++u) {
      const int kv = g == selection_granularity::query_head ? u / group : u;
      const dim_pair p = pe.fc_dims(plant_of(l, u));
      for (std::int64_t j = 0; j < cap; ++j)
        for (int x : {p.first, p.second}) {
          const std::size_t at = static_cast<std::size_t>((kv * cap + j) * d + x);
          keys[at] = big[at];
        }
    }
    for (int kv = 0; kv < nkv; ++kv)
      for (std::int64_t j = 0; j < cap; ++j) pe.rotate(keys.data() + (kv * cap + j) * d, j);
    for (std::int64_t t = 300; t < cap; t += 2) {  // ten decode steps
      std::vector<float> q = fasa::test::random_vector(nq * d, ++seed, 0.3f);
      const std::vector<float> qbig = fasa::test::random_vector(nq * d, ++seed, 3.0f);
      for (int h = 0; h < nq; ++h) {
        const int unit = g == selection_granularity::query_head ? h : h / group;
        const dim_pair p = pe.fc_dims(plant_of(l, unit));
        for (int x : {p.first, p.second})
          q[static_cast<std::size_t>(h * d + x)] = qbig[static_cast<std::size_t>(h * d + x)];
        pe.rotate(q.data() + h * d, t - 1);
      }
      acc.add_layer(l, q.data(), keys.data(), t, cap * d);
    }
  }
  CHECK(acc.uniform_steps() == 10);
  run.mean = acc.mean();
  return run;
}

}  // namespace

TEST_CASE("calib: calibration recovers an FC planted as dominant (both layouts, granularities)") {
  for (const rope& pe : {rope::interleaved(64, 10000.0), rope::rotate_half(64, 10000.0)}) {
    // the planted FC is the rotation pair: (2i, 2i+1) interleaved, (i, i + d/2) rotate-half
    for (int i = 0; i < 32; ++i) {
      const dim_pair want = pe.layout() == rope_layout::interleaved ? dim_pair{2 * i, 2 * i + 1}
                                                                    : dim_pair{i, i + 32};
      CHECK(pe.fc_dims(i) == want);
    }
    for (selection_granularity g :
         {selection_granularity::query_head, selection_granularity::kv_head}) {
      CAPTURE(fasa::positional::to_string(pe.layout()));
      CAPTURE(fasa::to_string(g));
      const planted_run run = run_planted(pe, g);
      for (int k : {16, 64, 128}) {
        const auto top1 = fasa::calib::choose_dominant_fcs(run.mean, k, 1);
        const auto top4 = fasa::calib::choose_dominant_fcs(run.mean, k, 4);
        for (std::size_t l = 0; l < run.planted.size(); ++l)
          for (std::size_t u = 0; u < run.planted[l].size(); ++u) {
            CAPTURE(k);
            CAPTURE(l);
            CAPTURE(u);
            const int f = run.planted[l][u];
            CHECK(top1[l][u] == std::vector<int>{f});
            CHECK(std::count(top4[l][u].begin(), top4[l][u].end(), f) == 1);
            CHECK(std::is_sorted(top4[l][u].begin(), top4[l][u].end()));
            // the planted FC agrees with the full ranking far more than a random one would
            CHECK(run.mean.at(run.mean.k_index(k), static_cast<int>(l), static_cast<int>(u), f) >
                  0.6);
          }
      }
    }
  }
}

TEST_CASE("calib: a planted FC is not recovered when calibration uses the wrong FC map") {
  // The same rotate-half data scored with the code-compatible adjacent-dims map: the planted
  // rotation pair (i, i + d/2) is split across two adjacent-dims FCs, neither of which is FC i
  // in general. Guards the planted test against passing for a map-blind implementation.
  const rope pe = rope::rotate_half(64, 10000.0);
  const rope wrong = rope::rotate_half_adjacent_fcs(64, 10000.0);
  const int d = 64;
  const std::int64_t t = 200;
  const int f = 5;  // dims (5, 37): adjacent-dims FCs 2 and 18
  std::vector<float> keys = fasa::test::random_vector(t * d, 1, 0.3f);
  const std::vector<float> big = fasa::test::random_vector(t * d, 2, 3.0f);
  std::vector<float> q = fasa::test::random_vector(d, 3, 0.3f);
  const std::vector<float> qbig = fasa::test::random_vector(d, 4, 3.0f);
  for (int x : {f, f + 32}) {
    for (std::int64_t j = 0; j < t; ++j) keys[j * d + x] = big[j * d + x];
    q[x] = qbig[x];
  }
  for (std::int64_t j = 0; j < t; ++j) pe.rotate(keys.data() + j * d, j);
  pe.rotate(q.data(), t - 1);
  const std::vector<int> ks = {32};
  std::vector<double> right_ca(32), wrong_ca(32);
  fasa::calib::contextual_agreement(q.data(), 1, keys.data(), t, fc_table(pe), ks, right_ca);
  fasa::calib::contextual_agreement(q.data(), 1, keys.data(), t, fc_table(wrong), ks, wrong_ca);
  CHECK(fasa::calib::top_fcs(right_ca, 1) == std::vector<int>{f});
  CHECK(fasa::calib::top_fcs(wrong_ca, 1) != std::vector<int>{f});
  CHECK(right_ca[f] > wrong_ca[2]);
  CHECK(right_ca[f] > wrong_ca[18]);
}
