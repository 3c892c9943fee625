// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// Example 01: FASA end to end on synthetic data, on the reference backend.
//
// Real models' attention is driven by a few frequency chunks whose q/k components are large and
// rotate slowly (FASA Sec. 3.3). This example plants that structure in random data: per KV head,
// a handful of low-frequency FCs carry a shared direction whose strength varies per token. It
//   1. calibrates on one synthetic sequence: mean contextual agreement (FASA Eq. 4) over decode
//      steps, then the top-N_tip FCs per head (Alg. 1);
//   2. decodes another sequence with dense attention, the oracle top-k, FASA-C with the
//      calibrated FCs and FASA-C with random FCs, all at the same budget;
//   3. prints each one's output error against dense, its top-k recall against the oracle, and
//      the KV bytes it read per step.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "fasa/calib/contextual_agreement.hpp"
#include "fasa/calib/dominant_sets.hpp"
#include "fasa/fasa.hpp"

namespace {

using namespace fasa;

constexpr int kQHeads = 8, kKVHeads = 2, kDim = 128, kNTip = 16;
constexpr std::int64_t kContext = 4096, kBudget = 256, kSteps = 16;

// Pre-RoPE tokens with planted dominant FCs.
struct synthetic_source {
  std::mt19937 gen;
  std::normal_distribution<float> normal{0.0f, 1.0f};
  std::vector<std::vector<int>> planted;  // [kv_head] FC indices
  std::vector<std::vector<float>> dir;    // [kv_head][kDim] unit direction on the planted dims
  positional::rope pe;

  synthetic_source(std::uint32_t seed, const positional::rope& p) : gen(seed), pe(p) {
    std::mt19937 structure(7);  // the same planted FCs for every sequence: they are the model's
    for (int h = 0; h < kKVHeads; ++h) {
      std::vector<int> fcs(12);
      for (int i = 0; i < 12; ++i) fcs[static_cast<std::size_t>(i)] = 52 + i;  // slow FCs
      std::shuffle(fcs.begin(), fcs.end(), structure);
      fcs.resize(6);
      std::sort(fcs.begin(), fcs.end());
      std::vector<float> u(kDim, 0.0f);
      float norm = 0;
      for (int fc : fcs)
        for (int dim : {pe.fc_dims(fc).first, pe.fc_dims(fc).second}) {
          u[static_cast<std::size_t>(dim)] = std::normal_distribution<float>()(structure);
          norm += u[static_cast<std::size_t>(dim)] * u[static_cast<std::size_t>(dim)];
        }
      for (auto& x : u) x /= std::sqrt(norm);
      planted.push_back(fcs);
      dir.push_back(u);
    }
  }
  // k, v: [kKVHeads, kDim]; each token has its own strength along the planted direction.
  void token(std::vector<float>& k, std::vector<float>& v) {
    for (int h = 0; h < kKVHeads; ++h) {
      const float strength = 6.0f * normal(gen);
      for (int i = 0; i < kDim; ++i) {
        const auto at = static_cast<std::size_t>(h * kDim + i);
        k[at] =
            normal(gen) + strength * dir[static_cast<std::size_t>(h)][static_cast<std::size_t>(i)];
        v[at] = normal(gen);
      }
    }
  }
  // q: [kQHeads, kDim]; every head of a group looks along its KV head's direction.
  void query(std::vector<float>& q) {
    for (int h = 0; h < kQHeads; ++h)
      for (int i = 0; i < kDim; ++i)
        q[static_cast<std::size_t>(h * kDim + i)] =
            normal(gen) + 6.0f * dir[static_cast<std::size_t>(h / (kQHeads / kKVHeads))]
                                    [static_cast<std::size_t>(i)];
  }
};

double rel_error(const std::vector<float>& x, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    num += (x[i] - ref[i]) * static_cast<double>(x[i] - ref[i]);
    den += ref[i] * static_cast<double>(ref[i]);
  }
  return std::sqrt(num / den);
}

double recall(const selection& got, const selection& oracle) {
  double sum = 0;
  for (int u = 0; u < got.units; ++u) {
    const auto a = got.unit_tokens(u), b = oracle.unit_tokens(u);
    std::vector<std::int32_t> common;
    std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(common));
    sum += static_cast<double>(common.size()) / static_cast<double>(b.size());
  }
  return sum / got.units;
}

}  // namespace

int main() {
  const auto pe = positional::rope::interleaved(kDim, 10000.0);
  const attention_shape shape{kQHeads, kKVHeads, kDim, kContext + kSteps};
  const auto g = selection_granularity::query_head;  // the paper's mode
  std::vector<float> q(kQHeads * kDim), k(kKVHeads * kDim), v(kKVHeads * kDim), out(kQHeads * kDim);
  std::printf(
      "fasa example 01: synthetic decode, %d query / %d KV heads, head_dim %d, context %lld\n",
      kQHeads, kKVHeads, kDim, static_cast<long long>(kContext));

  // 1. Calibration on its own sequence: the cache of a dense layer holds the post-RoPE keys.
  calib::ca_config config;
  config.num_layers = 1;
  config.num_q_heads = kQHeads;
  config.num_kv_heads = kKVHeads;
  config.granularity = g;
  config.k_values = {256};
  calib::ca_accumulator acc(pe, config);
  config.granularity = selection_granularity::kv_head;  // the same steps, one set per KV head
  calib::ca_accumulator acc_kv(pe, config);
  {
    synthetic_source calib_src(1, pe);
    const attention_shape cshape{kQHeads, kKVHeads, kDim, 2048 + 32};
    auto cal = make_dense<backend::cpu_reference>(cshape, pe);
    for (int i = 0; i < 2048; ++i) {
      calib_src.token(k, v);
      cal.append(k, v);
    }
    for (int step = 0; step < 32; ++step) {
      calib_src.token(k, v);
      cal.append(k, v);
      calib_src.query(q);
      for (int h = 0; h < kQHeads; ++h) pe.rotate(q.data() + h * kDim, cal.size() - 1);
      // contiguous keys: [kv_heads, capacity, d]
      for (auto* a : {&acc, &acc_kv})
        a->add_layer(0, q.data(), cal.backend_state().cache.data(), cal.size(),
                     cshape.capacity * kDim);
    }
  }
  const auto dominant = calib::choose_dominant_fcs(acc.mean(), 256, kNTip)[0];
  const auto dominant_kv = calib::choose_dominant_fcs(acc_kv.mean(), 256, kNTip)[0];
  synthetic_source src(2, pe);
  for (int h = 0; h < kKVHeads; ++h) {
    std::printf("  KV head %d: planted FCs", h);
    for (int fc : src.planted[static_cast<std::size_t>(h)]) std::printf(" %d", fc);
    const auto& mine = dominant[static_cast<std::size_t>(h * (kQHeads / kKVHeads))];
    int found = 0;
    for (int fc : src.planted[static_cast<std::size_t>(h)])
      found += std::count(mine.begin(), mine.end(), fc) > 0;
    std::printf("; calibrated N_tip=%d set of its first query head contains %d of them\n", kNTip,
                found);
  }

  // 2. Four variants on the same decode steps.
  auto dense_attn = make_dense<backend::cpu_reference>(shape, pe);
  selector::oracle_topk oracle_sel;
  oracle_sel.budget = token_budget::tokens(kBudget);
  oracle_sel.mode = g;
  auto oracle_attn = make_oracle<backend::cpu_reference>(shape, pe, oracle_sel);
  const dominant_plan plan(pe, shape, g, dominant);
  auto fasa_attn = make_fasa_c<backend::cpu_reference>(plan, pe, token_budget::tokens(kBudget));
  std::mt19937 pick(3);
  std::vector<std::vector<int>> random_sets;
  for (int u = 0; u < kQHeads; ++u) {
    std::vector<int> all(kDim / 2);
    for (int i = 0; i < kDim / 2; ++i) all[static_cast<std::size_t>(i)] = i;
    std::shuffle(all.begin(), all.end(), pick);
    random_sets.emplace_back(all.begin(), all.begin() + kNTip);
  }
  const dominant_plan random_plan(pe, shape, g, random_sets);
  auto random_attn =
      make_fasa_c<backend::cpu_reference>(random_plan, pe, token_budget::tokens(kBudget));

  const dominant_plan kv_plan(pe, shape, selection_granularity::kv_head, dominant_kv);
  auto kv_attn = make_fasa_c<backend::cpu_reference>(kv_plan, pe, token_budget::tokens(kBudget));
  oracle_sel.mode = selection_granularity::kv_head;
  auto kv_oracle_attn = make_oracle<backend::cpu_reference>(shape, pe, oracle_sel);

  for (std::int64_t i = 0; i < kContext - 1; ++i) {
    src.token(k, v);
    dense_attn.append(k, v);
    oracle_attn.append(k, v);
    fasa_attn.append(k, v);
    random_attn.append(k, v);
    kv_attn.append(k, v);
    kv_oracle_attn.append(k, v);
  }
  double err_oracle = 0, err_fasa = 0, err_random = 0, err_kv = 0;
  double rec_fasa = 0, rec_random = 0, rec_kv = 0;
  step_stats s_dense, s_oracle, s_fasa, s_kv;
  std::vector<float> ref(out.size());
  for (std::int64_t step = 0; step < kSteps; ++step) {
    src.token(k, v);
    src.query(q);
    s_dense = dense_attn.decode(q, k, v, ref);
    s_oracle = oracle_attn.decode(q, k, v, out);
    err_oracle += rel_error(out, ref) / kSteps;
    s_fasa = fasa_attn.decode(q, k, v, out);
    err_fasa += rel_error(out, ref) / kSteps;
    random_attn.decode(q, k, v, out);
    err_random += rel_error(out, ref) / kSteps;
    rec_fasa += recall(fasa_attn.last_selection(), oracle_attn.last_selection()) / kSteps;
    rec_random += recall(random_attn.last_selection(), oracle_attn.last_selection()) / kSteps;
    s_kv = kv_attn.decode(q, k, v, out);
    err_kv += rel_error(out, ref) / kSteps;
    kv_oracle_attn.decode(q, k, v, out);
    rec_kv += recall(kv_attn.last_selection(), kv_oracle_attn.last_selection()) / kSteps;
  }

  // 3. The table.
  const auto mb = [](const step_stats& s) { return static_cast<double>(s.bytes_read()) / 1e6; };
  std::printf("\n%-24s %14s %16s %20s\n", "variant (budget 256)", "rel. error", "recall vs oracle",
              "KV MB read per step");
  std::printf("%-24s %14.4f %16s %12.2f (100%%)\n", "dense", 0.0, "-", mb(s_dense));
  std::printf("%-24s %14.4f %16.3f %12.2f (%.0f%%)\n", "oracle_topk", err_oracle, 1.0, mb(s_oracle),
              100 * s_oracle.fraction_of_dense());
  std::printf("%-24s %14.4f %16.3f %12.2f (%.1f%%)\n", "fasa_c, calibrated FCs", err_fasa, rec_fasa,
              mb(s_fasa), 100 * s_fasa.fraction_of_dense());
  std::printf("%-24s %14.4f %16.3f %12.2f (%.1f%%)\n", "fasa_c, random FCs", err_random, rec_random,
              mb(s_fasa), 100 * s_fasa.fraction_of_dense());
  std::printf("%-24s %14.4f %16.3f %12.2f (%.1f%%)\n", "fasa_c, per KV head", err_kv, rec_kv,
              mb(s_kv), 100 * s_kv.fraction_of_dense());
  std::printf(
      "\nrelative error: ||o - o_dense|| / ||o_dense||, mean over %lld decode steps.\n"
      "fasa_c reads the dominant-dim slab of every key plus %lld full K/V rows per selection\n"
      "unit. Per query head (the paper's mode) the slab holds the union of a group's sets\n"
      "(width %d of %d dims here); per KV head it is 2*N_tip = %d dims and the group\n"
      "shares one selection (recall there is against the per-KV-head oracle). The oracle\n"
      "reads every key in full to rank.\n",
      static_cast<long long>(kSteps), static_cast<long long>(kBudget), plan.slab_width(), kDim,
      kv_plan.slab_width());
  return 0;
}
