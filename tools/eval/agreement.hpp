// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Agreement: how well a variant's token choice matches the truth, on real decode steps. The
// model runs densely (teacher-forced over a window of real text) and, after every layer's decode
// step, the layer's query and full cache are scored here, per query head:
//   recall    |chosen ∩ oracle top-B| / B, B the variant's budget at this length;
//   mass      the dense attention probability that falls on the chosen tokens;
//   rel_err   ||attention over the chosen tokens - dense attention|| / ||dense attention||;
// and, for fasa, the compound CA of FASA.md Table 1: the share of the full logits' top-K that
// the top-K of the score on the head's F = N_tip dominant FCs recovers, against F random FCs.
// Layers the variant keeps dense are left out.

#include <cmath>
#include <cstdio>
#include <random>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "fasa/core/topk.hpp"
#include "protocol.hpp"

namespace fasa::tools::eval {

class agreement_protocol final : public protocol {
 public:
  std::string text = default_data_dir() + "/haystack/PaulGrahamEssays.json";
  std::int64_t prefill = 4096;
  int steps = 32;
  std::vector<int> k_values{64, 128, 256, 512, 1024, 2048};
  unsigned seed = 1;

  void add_options(CLI::App* app) {
    app->add_option("--text", text, "text whose window is decoded (plain text or JSON)")
        ->capture_default_str();
    app->add_option("--prefill", prefill, "tokens prefilled before the measured steps")
        ->capture_default_str()
        ->check(tokens_at_least(1));
    app->add_option("--steps", steps, "decode steps measured (teacher-forced on the text)")
        ->capture_default_str()
        ->check(whole_in(1, 1 << 20));
    app->add_option("--k", k_values, "windows K of the compound CA, comma-separated")
        ->delimiter(',')
        ->capture_default_str()
        ->check(tokens_at_least(1));
    app->add_option("--seed", seed, "seed of the random FC sets")
        ->capture_default_str()
        ->check(seed_check());
  }

  std::string name() const override { return "agreement"; }
  std::string settings() const override {
    return "text=" + fs::path(text).filename().string() + " prefill=" + std::to_string(prefill) +
           " steps=" + std::to_string(steps);
  }
  std::string metric() const override { return "recall"; }
  std::vector<std::string> table_columns() const override {
    std::vector<std::string> cols{"variant", "recall", "mass", "rel_err"};
    for (int k : k_values) {
      cols.push_back("ca_dominant_k" + std::to_string(k));
      cols.push_back("ca_random_k" + std::to_string(k));
    }
    return cols;
  }

  protocol_result run(session& s, const variant& v) override {
    FASA_CHECK(prefill >= 1 && steps >= 1, "--prefill and --steps must be at least 1");
    for (int k : k_values) FASA_CHECK(k >= 1, "--k values must be at least 1, got ", k);
    // A window K that covers the context makes every CA 1: such K are dropped.
    const auto covers = [&](int k) { return k >= prefill; };
    if (std::any_of(k_values.begin(), k_values.end(), covers)) {
      std::fprintf(stderr, "agreement: dropping windows K >= the %lld-token context\n",
                   static_cast<long long>(prefill));
      k_values.erase(std::remove_if(k_values.begin(), k_values.end(), covers), k_values.end());
    }
    const auto& c = s.config();
    const auto& tokens = corpus_tokens(s);
    FASA_CHECK(static_cast<std::int64_t>(tokens.size()) >= prefill + steps, "'", text, "' has ",
               tokens.size(), " tokens; need ", prefill + steps);
    const positional::rope pe = c.rope(v.mapping);
    const int d = c.head_dim, group = c.n_heads / c.n_kv_heads;
    const token_budget budget = parse_budget(v.budget);
    // The variant's dominant FC sets: the same choice build_attention makes.
    calib::dominant_fc_sets dominant;
    if (v.selector == "fasa")
      dominant = dominant_sets_for(s.calibration(v), budget, v.n_tip, d, s.options().calibration_k);
    const std::size_t nk = k_values.size();
    struct acc {
      double recall = 0, mass = 0, err = 0, n = 0;
      std::vector<double> ca_dom, ca_rand;
      double n_ca = 0;
    };
    std::vector<acc> per_layer(static_cast<std::size_t>(c.n_layers));
    for (auto& a : per_layer) a.ca_dom.assign(nk, 0), a.ca_rand.assign(nk, 0);
    std::mt19937 rng(seed);

    variant dv;
    dv.selector = "dense";
    auto m = s.make_model(dv, prefill + steps);
    const std::vector<std::int32_t> head(tokens.begin(), tokens.begin() + prefill);
    std::vector<float> q_rot(static_cast<std::size_t>(c.n_heads * d));
    m->set_decode_observer([&](int layer, std::span<const float> q, std::int64_t pos,
                               const model::layer_attention& attn) {
      if (std::find(s.options().dense_layers.begin(), s.options().dense_layers.end(), layer) !=
          s.options().dense_layers.end())
        return;
      std::copy(q.begin(), q.end(), q_rot.begin());
      for (int h = 0; h < c.n_heads; ++h) pe.rotate(q_rot.data() + h * d, pos);
      const model::host_keys_view kv = attn.keys();
      const std::int64_t t = pos + 1;
      const std::int64_t keep = budget.keep(t);
      // Random FC sets for this layer and step, drawn outside the parallel loop.
      std::vector<std::vector<int>> random_sets(static_cast<std::size_t>(c.n_heads));
      if (v.selector == "fasa")
        for (auto& set : random_sets) {
          std::vector<int> all(static_cast<std::size_t>(pe.num_fcs()));
          std::iota(all.begin(), all.end(), 0);
          std::shuffle(all.begin(), all.end(), rng);
          set.assign(all.begin(), all.begin() + v.n_tip);
        }
      auto& a = per_layer[static_cast<std::size_t>(layer)];
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic)
#endif
      for (int h = 0; h < c.n_heads; ++h) {
        const int g = h / group;
        const float* keys = kv.data + g * kv.kv_head_stride;
        const float* values = kv.values + g * kv.kv_head_stride;
        const float* qh = q_rot.data() + h * d;
        // The unit's query: this head, or the group's sum under kv_head.
        std::vector<float> qu(qh, qh + d);
        if (v.granularity == selection_granularity::kv_head)
          for (int j = 0; j < d; ++j) {
            qu[static_cast<std::size_t>(j)] = 0;
            for (int m2 = 0; m2 < group; ++m2)
              qu[static_cast<std::size_t>(j)] +=
                  q_rot[static_cast<std::size_t>((g * group + m2) * d + j)];
          }
        auto dot = [&](const float* x, std::int64_t tok, const std::vector<int>* fcs) {
          const float* k = keys + tok * d;
          float sum = 0;
          if (!fcs) {
            for (int j = 0; j < d; ++j) sum += x[j] * k[j];
          } else {
            for (int fc : *fcs) {
              const dim_pair p = pe.fc_dims(fc);
              sum += x[p.first] * k[p.first] + x[p.second] * k[p.second];
            }
          }
          return sum;
        };
        std::vector<float> full(static_cast<std::size_t>(t)), unit(static_cast<std::size_t>(t));
        for (std::int64_t j = 0; j < t; ++j)
          full[static_cast<std::size_t>(j)] = dot(qh, j, nullptr);
        const std::vector<int>* dom = nullptr;
        if (v.selector == "fasa") {
          const int u = v.granularity == selection_granularity::kv_head ? g : h;
          dom = &dominant[static_cast<std::size_t>(layer)][static_cast<std::size_t>(u)];
        }
        std::vector<std::int32_t> oracle, chosen, scratch;
        select_top_k(full, keep, {}, oracle, scratch);
        if (v.selector == "dense") {
          chosen.resize(static_cast<std::size_t>(t));
          std::iota(chosen.begin(), chosen.end(), 0);
        } else {
          for (std::int64_t j = 0; j < t; ++j)
            unit[static_cast<std::size_t>(j)] = dot(qu.data(), j, dom);
          select_top_k(unit, keep, {}, chosen, scratch);
        }
        // Dense attention probabilities and outputs, in double.
        const double scale = 1.0 / std::sqrt(static_cast<double>(d));
        const float mx = *std::max_element(full.begin(), full.end());
        std::vector<double> p(static_cast<std::size_t>(t));
        double z = 0;
        for (std::int64_t j = 0; j < t; ++j)
          z += p[static_cast<std::size_t>(j)] =
              std::exp((full[static_cast<std::size_t>(j)] - mx) * scale);
        std::vector<double> o_dense(static_cast<std::size_t>(d), 0.0),
            o_sel(static_cast<std::size_t>(d), 0.0);
        for (std::int64_t j = 0; j < t; ++j)
          for (int e = 0; e < d; ++e)
            o_dense[static_cast<std::size_t>(e)] +=
                p[static_cast<std::size_t>(j)] / z * values[j * d + e];
        double zs = 0;
        for (auto j : chosen) zs += p[static_cast<std::size_t>(j)];
        for (auto j : chosen)
          for (int e = 0; e < d; ++e)
            o_sel[static_cast<std::size_t>(e)] +=
                p[static_cast<std::size_t>(j)] / zs * values[static_cast<std::int64_t>(j) * d + e];
        double num = 0, den = 0;
        for (int e = 0; e < d; ++e) {
          num += (o_sel[static_cast<std::size_t>(e)] - o_dense[static_cast<std::size_t>(e)]) *
                 (o_sel[static_cast<std::size_t>(e)] - o_dense[static_cast<std::size_t>(e)]);
          den += o_dense[static_cast<std::size_t>(e)] * o_dense[static_cast<std::size_t>(e)];
        }
        std::vector<char> in_oracle(static_cast<std::size_t>(t), 0);
        for (auto j : oracle) in_oracle[static_cast<std::size_t>(j)] = 1;
        std::int64_t hit = 0;
        for (auto j : chosen) hit += in_oracle[static_cast<std::size_t>(j)];
        const double recall = static_cast<double>(std::min<std::int64_t>(hit, keep)) / keep;
        // Compound CA at each K (fasa only): this head's query on its dominant / random FCs.
        std::vector<double> ca_dom(nk, 0), ca_rand(nk, 0);
        if (dom) {
          std::vector<float> sd(static_cast<std::size_t>(t)), sr(static_cast<std::size_t>(t));
          for (std::int64_t j = 0; j < t; ++j) {
            sd[static_cast<std::size_t>(j)] = dot(qh, j, dom);
            sr[static_cast<std::size_t>(j)] = dot(qh, j, &random_sets[static_cast<std::size_t>(h)]);
          }
          std::vector<std::int32_t> top_full, top_d, top_r;
          for (std::size_t ki = 0; ki < nk; ++ki) {
            const std::int64_t k = std::min<std::int64_t>(k_values[ki], t);
            select_top_k(full, k, {}, top_full, scratch);
            select_top_k(sd, k, {}, top_d, scratch);
            select_top_k(sr, k, {}, top_r, scratch);
            std::vector<char> in_full(static_cast<std::size_t>(t), 0);
            for (auto j : top_full) in_full[static_cast<std::size_t>(j)] = 1;
            std::int64_t hd = 0, hr = 0;
            for (auto j : top_d) hd += in_full[static_cast<std::size_t>(j)];
            for (auto j : top_r) hr += in_full[static_cast<std::size_t>(j)];
            ca_dom[ki] = static_cast<double>(hd) / k;
            ca_rand[ki] = static_cast<double>(hr) / k;
          }
        }
#if defined(_OPENMP)
#pragma omp critical
#endif
        {
          a.recall += recall;
          a.mass += zs / z;
          a.err += den > 0 ? std::sqrt(num / den) : 0.0;
          a.n += 1;
          if (dom) {
            for (std::size_t ki = 0; ki < nk; ++ki)
              a.ca_dom[ki] += ca_dom[ki], a.ca_rand[ki] += ca_rand[ki];
            a.n_ca += 1;
          }
        }
      }
    });
    const double start = seconds_now();
    const std::string label = "agreement " + v.key();
    try {
      m->load_prefix(s.prefix("agreement:" + text + ":" + std::to_string(prefill), head));
      for (int i = 0; i < steps; ++i) {
        m->decode(tokens[static_cast<std::size_t>(prefill + i)]);
        progress_bar(label.c_str(), i + 1, steps, start);
      }
    } catch (...) {
      m->set_decode_observer({});
      throw;
    }
    m->set_decode_observer({});

    protocol_result res;
    acc total;
    total.ca_dom.assign(nk, 0), total.ca_rand.assign(nk, 0);
    for (int l = 0; l < c.n_layers; ++l) {
      const auto& a = per_layer[static_cast<std::size_t>(l)];
      if (a.n == 0) continue;
      row r = variant_row(v);
      r.set("layer", l).set("recall", a.recall / a.n).set("mass", a.mass / a.n);
      r.set("rel_err", a.err / a.n);
      res.samples.push_back(std::move(r));
      total.recall += a.recall, total.mass += a.mass, total.err += a.err, total.n += a.n;
      for (std::size_t ki = 0; ki < nk; ++ki)
        total.ca_dom[ki] += a.ca_dom[ki], total.ca_rand[ki] += a.ca_rand[ki];
      total.n_ca += a.n_ca;
    }
    FASA_CHECK(total.n > 0, "agreement: every layer is dense; nothing to measure");
    res.summary = variant_row(v);
    res.summary.set("head_steps", static_cast<std::int64_t>(total.n));
    res.summary.set("recall", total.recall / total.n).set("mass", total.mass / total.n);
    res.summary.set("rel_err", total.err / total.n);
    if (total.n_ca > 0)
      for (std::size_t ki = 0; ki < nk; ++ki) {
        res.summary.set("ca_dominant_k" + std::to_string(k_values[ki]),
                        total.ca_dom[ki] / total.n_ca);
        res.summary.set("ca_random_k" + std::to_string(k_values[ki]),
                        total.ca_rand[ki] / total.n_ca);
      }
    res.summary.set("seconds", seconds_now() - start);
    return res;
  }

 private:
  const std::vector<std::int32_t>& corpus_tokens(session& s) {
    if (tokens_.empty()) {
      std::string t = read_text_corpus(text, "text");
      // A window needs (prefill + steps) tokens; about 8 characters a token is ample.
      t.resize(
          std::min<std::size_t>(t.size(), static_cast<std::size_t>(prefill + steps) * 8 + 1024));
      tokens_ = s.model().tokenizer.encode(t, false);
    }
    return tokens_;
  }
  std::vector<std::int32_t> tokens_;
};

}  // namespace fasa::tools::eval
